import { CircuitBreaker } from './circuit-breaker';

describe('CircuitBreaker', () => {
  let now: number;
  const clock = () => now;
  const make = (failureThreshold = 3, cooldownMs = 1000) =>
    new CircuitBreaker({ failureThreshold, cooldownMs }, clock);

  beforeEach(() => {
    now = 1_000_000;
  });

  it('starts closed and lets calls through', () => {
    const b = make();
    expect(b.currentState).toBe('closed');
    expect(b.tryPass()).toBe(true);
    expect(b.tryPass()).toBe(true);
    expect(b.blockedForMs()).toBe(0);
  });

  it('opens after failureThreshold consecutive failures, not before', () => {
    const b = make(3);
    expect(b.failure()).toBe(false);
    expect(b.currentState).toBe('closed');
    expect(b.failure()).toBe(false);
    expect(b.tryPass()).toBe(true);
    expect(b.failure()).toBe(true);
    expect(b.currentState).toBe('open');
  });

  it('fails fast while open and reports how long it stays blocked', () => {
    const b = make(2, 1000);
    b.failure();
    b.failure();
    expect(b.tryPass()).toBe(false);
    expect(b.blockedForMs()).toBe(1000);
    now += 400;
    expect(b.tryPass()).toBe(false);
    expect(b.blockedForMs()).toBe(600);
    now += 599;
    expect(b.tryPass()).toBe(false);
    expect(b.blockedForMs()).toBeGreaterThan(0);
  });

  it('turns half-open after the cooldown and lets exactly one trial through', () => {
    const b = make(2, 1000);
    b.failure();
    b.failure();
    now += 1000;
    expect(b.currentState).toBe('half-open');
    expect(b.blockedForMs()).toBe(0);
    expect(b.tryPass()).toBe(true);
    // the trial is in flight: everyone else is still refused
    expect(b.tryPass()).toBe(false);
    expect(b.tryPass()).toBe(false);
    expect(b.blockedForMs()).toBeGreaterThan(0);
  });

  it('a successful trial closes the circuit', () => {
    const b = make(2, 1000);
    b.failure();
    b.failure();
    now += 1500;
    expect(b.tryPass()).toBe(true);
    b.success();
    expect(b.currentState).toBe('closed');
    expect(b.tryPass()).toBe(true);
    expect(b.tryPass()).toBe(true);
    expect(b.blockedForMs()).toBe(0);
    // and the count starts from zero again
    expect(b.failure()).toBe(false);
    expect(b.currentState).toBe('closed');
  });

  it('a failed trial re-opens the circuit for a fresh cooldown', () => {
    const b = make(3, 1000);
    b.failure();
    b.failure();
    b.failure();
    now += 1000;
    expect(b.tryPass()).toBe(true);
    now += 250; // the trial took a while
    expect(b.failure()).toBe(true); // a single failure re-opens
    expect(b.currentState).toBe('open');
    expect(b.tryPass()).toBe(false);
    expect(b.blockedForMs()).toBe(1000); // measured from the trial's failure
    now += 999;
    expect(b.tryPass()).toBe(false);
    now += 1;
    expect(b.tryPass()).toBe(true);
  });

  it('a success resets the consecutive failure count', () => {
    const b = make(3);
    b.failure();
    b.failure();
    b.success();
    expect(b.failure()).toBe(false);
    expect(b.failure()).toBe(false);
    expect(b.currentState).toBe('closed');
    expect(b.tryPass()).toBe(true);
    expect(b.failure()).toBe(true);
    expect(b.currentState).toBe('open');
  });

  it('uses Date.now by default', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, cooldownMs: 60_000 });
    b.failure();
    const blocked = b.blockedForMs();
    expect(blocked).toBeGreaterThan(59_000);
    expect(blocked).toBeLessThanOrEqual(60_000);
  });
});
