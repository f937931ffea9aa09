export interface BreakerPolicy {
  failureThreshold: number;
  cooldownMs: number;
}

type State = 'closed' | 'open' | 'half-open';

/**
 * Per-server circuit breaker: after `failureThreshold` consecutive connect failures the
 * circuit opens and connects fail fast for `cooldownMs`; then one trial is let through.
 */
export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private state: State = 'closed';
  private trialInFlight = false;

  constructor(
    private readonly policy: BreakerPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  get currentState(): State {
    if (this.state === 'open' && this.now() - this.openedAt >= this.policy.cooldownMs) {
      return 'half-open';
    }
    return this.state;
  }

  /** Milliseconds until a trial is allowed, 0 when a call may proceed now. */
  blockedForMs(): number {
    const s = this.currentState;
    if (s === 'closed') return 0;
    if (s === 'half-open') return this.trialInFlight ? this.policy.cooldownMs : 0;
    return this.policy.cooldownMs - (this.now() - this.openedAt);
  }

  /** Claims the right to try; false when the circuit is open. */
  tryPass(): boolean {
    const s = this.currentState;
    if (s === 'closed') return true;
    if (s === 'half-open' && !this.trialInFlight) {
      this.state = 'half-open';
      this.trialInFlight = true;
      return true;
    }
    return false;
  }

  success(): void {
    this.failures = 0;
    this.state = 'closed';
    this.trialInFlight = false;
  }

  /** Returns true when this failure opened the circuit. */
  failure(): boolean {
    this.failures++;
    const trialFailed = this.state !== 'closed';
    this.trialInFlight = false;
    if (trialFailed || this.failures >= this.policy.failureThreshold) {
      this.state = 'open';
      this.openedAt = this.now();
      return true;
    }
    return false;
  }
}
