/**
 * When a PreparingRebalance phase must end even though not every member has rejoined:
 * Kafka's DelayedJoin and InitialDelayedJoin (GroupCoordinator.scala) as one unref'd timer.
 *
 * - `start(rebalanceTimeoutMs)`: the phase ends early once everyone rejoined (the group
 *   checks), and by force at the largest rebalance timeout of the members.
 * - `startInitial(delayMs, rebalanceTimeoutMs)`, for a group that was Empty: the phase never
 *   ends early; it waits `delayMs` (group.initial.rebalance.delay.ms), and again while new
 *   members keep arriving, never past the rebalance timeout. Kafka extends only in a group's
 *   first generation; here every join into an Empty group gets the same treatment, so a
 *   restarted fleet also lands in one generation.
 */
export class JoinDeadline {
  #timer: NodeJS.Timeout | undefined;
  #initial = false;
  #delayMs = 0;
  #remainingMs = 0;
  #newMemberAdded = false;
  #onExpire: () => void;

  constructor(onExpire: () => void) {
    this.#onExpire = onExpire;
  }

  /** True during an initial delay, when the phase must not end early. */
  get initialPhase(): boolean {
    return this.#initial;
  }

  start(rebalanceTimeoutMs: number): void {
    this.#initial = false;
    this.#arm(rebalanceTimeoutMs);
  }

  startInitial(delayMs: number, rebalanceTimeoutMs: number): void {
    this.#initial = true;
    this.#delayMs = delayMs;
    this.#remainingMs = Math.max(rebalanceTimeoutMs - delayMs, 0);
    this.#newMemberAdded = false;
    this.#arm(delayMs);
  }

  /** A member joined the group for the first time during this phase. */
  noteNewMember(): void {
    if (this.#initial) this.#newMemberAdded = true;
  }

  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#initial = false;
  }

  #arm(ms: number): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#fired(), ms);
    this.#timer.unref();
  }

  #fired(): void {
    if (this.#initial && this.#newMemberAdded && this.#remainingMs > 0) {
      const delay = Math.min(this.#delayMs, this.#remainingMs);
      this.#newMemberAdded = false;
      this.#remainingMs -= delay;
      this.#arm(delay);
      return;
    }
    this.cancel();
    this.#onExpire();
  }
}
