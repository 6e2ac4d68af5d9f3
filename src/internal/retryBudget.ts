/**
 * The retry budget's state: requests and retries counted over a sliding window of `slots` buckets. Pure
 * except for its own mutation; the caller passes `now` (Effect clock milliseconds), so TestClock drives it. Then the
 * budget's options Schema and the service over that state (documented as `Retry.makeBudget`).
 */
import { Duration, Effect, Either, Schema } from "effect"
import { decode, type InvalidOptions } from "../InvalidOptions.js"
import type { Budget, BudgetOptions } from "../Retry.js"
import { FiniteDuration, strict } from "./optionSchemas.js"

/** Budget parameters, already validated. */
export interface BudgetConfig {
  readonly ratio: number
  readonly windowMs: number
  readonly minPerSecond: number
}

const SLOTS = 10

/** Counts over a sliding window, in `SLOTS` buckets (the oldest bucket expires as a whole). */
export class WindowCounter {
  private readonly counts = new Float64Array(SLOTS)
  private readonly stamps = new Float64Array(SLOTS).fill(-1)
  private readonly slotMs: number

  constructor(windowMs: number) {
    this.slotMs = windowMs / SLOTS
  }

  private slot(now: number): number {
    const index = Math.floor(now / this.slotMs)
    const position = index % SLOTS
    if (this.stamps[position] !== index) {
      this.stamps[position] = index
      this.counts[position] = 0
    }
    return position
  }

  add(now: number, amount = 1): void {
    this.counts[this.slot(now)] += amount
  }

  sum(now: number): number {
    const index = Math.floor(now / this.slotMs)
    let total = 0
    for (let i = 0; i < SLOTS; i++) {
      if (this.stamps[i] > index - SLOTS && this.stamps[i] <= index) total += this.counts[i]
    }
    return total
  }
}

/** What the budget holds at a moment. */
export interface BudgetSnapshot {
  /** Logical calls in the window. */
  readonly requests: number
  /** Retries granted in the window. */
  readonly retries: number
  /** Retries the window allows: max(ratio × requests, minPerSecond × window seconds). */
  readonly allowance: number
}

/**
 * A retry budget: retries granted over the window may be at most the larger of `ratio` × the logical calls of
 * the window and `minPerSecond` × the window in seconds (a floor so that low-traffic callers can still retry).
 * The larger, not the sum (Envoy's rule, where Finagle adds them): a busy service's retries stay within `ratio`.
 */
export class BudgetState {
  private readonly requests: WindowCounter
  private readonly retries: WindowCounter
  private readonly floor: number

  constructor(readonly config: BudgetConfig) {
    this.requests = new WindowCounter(config.windowMs)
    this.retries = new WindowCounter(config.windowMs)
    this.floor = config.minPerSecond * (config.windowMs / 1000)
  }

  deposit(now: number): void {
    this.requests.add(now)
  }

  tryWithdraw(now: number): boolean {
    const allowance = this.allowance(now)
    if (this.retries.sum(now) + 1 > allowance) return false
    this.retries.add(now)
    return true
  }

  snapshot(now: number): BudgetSnapshot {
    return { requests: this.requests.sum(now), retries: this.retries.sum(now), allowance: this.allowance(now) }
  }

  private allowance(now: number): number {
    return Math.max(this.config.ratio * this.requests.sum(now), this.floor)
  }
}

/** Marks a {@link Budget} (so a budget is told from any other object in options). */
export const BudgetTypeId: unique symbol = Symbol.for("effect-llm-resilience/RetryBudget")

/** Whether `u` is a budget made by `Retry.makeBudget`. */
export const isBudget = (u: unknown): u is Budget => typeof u === "object" && u !== null && BudgetTypeId in u

const BudgetOptionsSchema = Schema.Struct({
  ratio: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.between(0, 1000))),
  window: Schema.optional(
    FiniteDuration.pipe(Schema.filter((d) => Duration.greaterThan(d, Duration.zero) || "Expected a positive duration"))
  ),
  minPerSecond: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative()))
}).annotations(strict)

/** A budget of the options of `Retry.makeBudget` (or their InvalidOptions), on the Effect clock. */
export const make = (options: BudgetOptions): Effect.Effect<Budget, InvalidOptions> =>
  Either.match(decode(BudgetOptionsSchema, "Retry.Budget", options), {
    onLeft: Effect.fail,
    onRight: (o) => Effect.sync(() => unsafeMake(o))
  })

const unsafeMake = (o: typeof BudgetOptionsSchema.Type): Budget => {
  const state = new BudgetState({
    ratio: o.ratio ?? 0.2,
    windowMs: Duration.toMillis(o.window ?? Duration.seconds(10)),
    minPerSecond: o.minPerSecond ?? 10
  })
  const at = <A>(f: (now: number) => A): Effect.Effect<A> =>
    Effect.clockWith((clock) => Effect.sync(() => f(clock.unsafeCurrentTimeMillis())))
  return {
    [BudgetTypeId]: BudgetTypeId,
    deposit: at((now) => state.deposit(now)),
    tryWithdraw: at((now) => state.tryWithdraw(now)),
    snapshot: at((now) => state.snapshot(now))
  }
}
