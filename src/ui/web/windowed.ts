/**
 * Windowed rendering: a scrolling viewport whose content is a tall spacer, with elements
 * only for the rows in view (plus a few), reused as it scrolls. `paint` fills one element
 * for one item; `key` says whether an element already shows the item's current state.
 */
export class Windowed<T> {
  private readonly spacer: HTMLElement;
  private readonly pool: HTMLElement[] = [];
  private items: T[] = [];
  private frame = 0;

  constructor(
    readonly viewport: HTMLElement,
    private readonly opts: {
      rowHeight: number;
      /** Width of one cell for a grid; none for a list (one item per row). */
      cellWidth?: number;
      gap?: number;
      make: () => HTMLElement;
      paint: (el: HTMLElement, item: T, index: number) => void;
      key: (item: T, index: number) => string;
    },
  ) {
    this.spacer = document.createElement('div');
    this.spacer.className = `${viewport.className}-spacer`;
    viewport.appendChild(this.spacer);
    viewport.addEventListener('scroll', () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  get length(): number {
    return this.items.length;
  }

  setItems(items: T[]): void {
    this.items = items;
    this.schedule();
  }

  atBottom(): boolean {
    const v = this.viewport;
    return v.scrollHeight - v.scrollTop - v.clientHeight < this.opts.rowHeight * 2;
  }

  scrollToBottom(): void {
    this.viewport.scrollTop = this.viewport.scrollHeight;
  }

  /** Repaints on the next animation frame (once, however often it is asked). */
  schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.render());
  }

  /** Paints the rows in view now (a repaint already asked for is then not needed). */
  render(): void {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    const { rowHeight, cellWidth, gap = 0 } = this.opts;
    const v = this.viewport;
    const cols = cellWidth ? Math.max(1, Math.floor((v.clientWidth - gap) / (cellWidth + gap))) : 1;
    const rows = Math.ceil(this.items.length / cols);
    this.spacer.style.height = `${rows * (rowHeight + gap) + gap}px`;
    const first = Math.max(0, Math.floor(v.scrollTop / (rowHeight + gap)) - 2);
    const last = Math.min(rows, Math.ceil((v.scrollTop + v.clientHeight) / (rowHeight + gap)) + 2);
    const from = first * cols;
    const to = Math.min(this.items.length, last * cols);
    const needed = Math.max(0, to - from);
    while (this.pool.length < needed) {
      const el = this.opts.make();
      this.spacer.appendChild(el);
      this.pool.push(el);
    }
    for (let slot = 0; slot < this.pool.length; slot++) {
      const el = this.pool[slot];
      const index = from + slot;
      if (slot >= needed) {
        el.hidden = true;
        continue;
      }
      el.hidden = false;
      const item = this.items[index];
      const key = `${cols}|${index}|${this.opts.key(item, index)}`;
      if ((el as any)._key === key) continue; // already shows this item as it is
      (el as any)._key = key;
      const row = Math.floor(index / cols);
      el.style.top = `${gap + row * (rowHeight + gap)}px`;
      if (cellWidth) el.style.left = `${gap + (index % cols) * (cellWidth + gap)}px`;
      el.dataset.index = String(index);
      this.opts.paint(el, item, index);
    }
  }
}
