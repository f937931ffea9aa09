import { monitorEventLoopDelay, IntervalHistogram } from 'node:perf_hooks';

/** Samples event-loop delay; p99 over the recent window, in ms. */
export class EventLoopLag {
  private readonly h: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  private last = 0;
  private readonly timer: NodeJS.Timeout;

  constructor(windowMs = 5000) {
    this.h.enable();
    this.timer = setInterval(() => {
      this.last = this.h.percentile(99) / 1e6;
      this.h.reset();
    }, windowMs);
    this.timer.unref();
  }

  get p99Ms(): number {
    return Math.max(this.last, this.h.count ? this.h.percentile(99) / 1e6 : 0);
  }

  stop(): void {
    clearInterval(this.timer);
    this.h.disable();
  }
}
