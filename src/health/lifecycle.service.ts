import { Injectable } from '@nestjs/common';

/** Process-wide lifecycle flags (readiness turns false while draining on shutdown). */
@Injectable()
export class LifecycleService {
  private draining = false;

  get isDraining(): boolean {
    return this.draining;
  }

  startDraining(): void {
    this.draining = true;
  }
}
