/**
 * Retries with exponential backoff and jitter that never storm: Retry-After is honoured (and a too-long one
 * hands over to a fallback at once), defects and interruptions are never retried, and a shared retry budget
 * caps retries across every call during an outage.
 *
 * The combinators work on any Effect or Stream, whatever its error type: LlmError's classification is the
 * default, and a user's own error type brings its `retryOn` (and optionally `retryAfter` and a `schedule`).
 *
 * A call that succeeds the first time builds no schedule state: the backoff Schedule is made on the first
 * failure only.
 *
 * @since 0.1.0
 */
import { Context, type Duration, Effect, Either, Layer, type Option, type Schedule, Stream } from "effect"
import type * as Backoff from "./internal/backoff.js"
import * as internal from "./internal/retry.js"
import * as RetryBudgetModule from "./internal/retryBudget.js"
import type { BudgetSnapshot as WindowSnapshot } from "./internal/retryBudget.js"
import * as RetryOptions from "./internal/retryOptions.js"
import type { InvalidOptions } from "./InvalidOptions.js"
import * as LlmClient from "./LlmClient.js"
import * as LlmError from "./LlmError.js"

/**
 * How a backoff delay d is randomised: `"full"` waits U[0, d], `"equal"` U[d/2, d], `"decorrelated"`
 * U[baseDelay, 3 × previous delay] capped at `maxDelay` (AWS's decorrelated jitter; `factor` is unused),
 * `"none"` exactly d.
 *
 * @example
 * ```ts
 * import { Retry } from "effect-llm-resilience"
 * const jitter: Retry.Jitter = "decorrelated"
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Jitter = Backoff.Jitter

/**
 * What `onRetry` receives before each retry's wait. `E` is the error type retried (LlmError by default).
 *
 * @example
 * ```ts
 * import { Duration } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * const log = (event: Retry.RetryEvent) => console.log(`retry #${event.retry} in ${Duration.format(event.delay)}`)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface RetryEvent<E = LlmError.LlmError> {
  /** 1 for the first retry (the second call), 2 for the second, … */
  readonly retry: number
  /** The error that is retried. */
  readonly error: E
  /** The wait before the retry (the backoff or the schedule's delay, or the Retry-After when it is longer). */
  readonly delay: Duration.Duration
  /**
   * The model, from the request (policy) or the error when it is an LlmError (combinator); "unknown" if neither
   * says.
   */
  readonly model: string
}

/**
 * Retry options over errors of type `E` (LlmError by default), with a `schedule` that may need `R`. Every field
 * is optional; the defaults are written on each. For an error type that is not an LlmError the combinators take
 * {@link OptionsFor}, where `retryOn` is required.
 *
 * @example
 * ```ts
 * import { Retry } from "effect-llm-resilience"
 * const options: Retry.Options = { maxRetries: 5, baseDelay: "500 millis", jitter: "equal" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options<E = LlmError.LlmError, R = never> {
  /**
   * Retries after the first call, so at most `maxRetries + 1` calls. Defaults to 3; with a `schedule`, to no
   * limit (the schedule decides when to stop; `maxRetries` then caps it).
   */
  readonly maxRetries?: number | undefined
  /** The delay before the first retry (before jitter). Defaults to "1 second". Not with `schedule`. */
  readonly baseDelay?: Duration.DurationInput | undefined
  /** Each retry's delay is the previous one × `factor` (≥ 1). Defaults to 2. Not with `schedule`. */
  readonly factor?: number | undefined
  /**
   * The cap on the computed delay (a Retry-After may exceed it). Must be ≥ `baseDelay`. Defaults to "30 seconds".
   * Not with `schedule`.
   */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** Jitter mode. Defaults to "full". Not with `schedule`. */
  readonly jitter?: Jitter | undefined
  /**
   * A Schedule of your own, fed each error, in place of the built-in backoff (`baseDelay`, `factor`, `maxDelay`
   * and `jitter` are then rejected): its delays are waited, and its end stops retrying. Retry-After, `retryOn`,
   * `maxRetries`, the `budget`, metrics and `onRetry` still apply: a longer Retry-After is waited in full, and
   * one over `maxRetryAfter` stops at once. No default.
   */
  readonly schedule?: Schedule.Schedule<unknown, NoInfer<E>, R> | undefined
  /**
   * Which errors to retry. Defaults to `LlmError.isRetryable` for LlmErrors; any other error is not retried
   * without it (so the combinators require it when `E` is not an LlmError).
   */
  readonly retryOn?: ((error: E) => boolean) | undefined
  /** The wait an error asks for (its Retry-After). Defaults to `LlmError.retryAfter` (none for other errors). */
  readonly retryAfter?: ((error: E) => Option.Option<Duration.Duration>) | undefined
  /** Wait the error's Retry-After when it is longer than the computed delay. Defaults to true. */
  readonly honorRetryAfter?: boolean | undefined
  /**
   * A Retry-After longer than this is not waited out: the error is returned at once (so a fallback can take
   * over). Defaults to "60 seconds".
   */
  readonly maxRetryAfter?: Duration.DurationInput | undefined
  /** A retry budget shared with other calls: when it is spent, errors are returned without retrying. No default. */
  readonly budget?: Budget | undefined
  /** Called before each retry's wait (a returned Effect is run). */
  readonly onRetry?: ((event: RetryEvent<E>) => void | Effect.Effect<void>) | undefined
}

/**
 * {@link Options} for any error type `E`, with the `retryOn` that says which of its errors are worth another
 * call: what {@link withRetry}, {@link withStreamRetry} and {@link schedule} require when `E` is not an LlmError.
 *
 * @example
 * ```ts
 * import { Data, Duration, Option } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * class HttpFailure extends Data.TaggedError("HttpFailure")<{ status: number; retryAfterMs?: number }> {}
 * const options: Retry.OptionsFor<HttpFailure> = {
 *   maxRetries: 3,
 *   retryOn: (e) => e.status === 429 || e.status >= 500,
 *   retryAfter: (e) => Option.map(Option.fromNullable(e.retryAfterMs), Duration.millis)
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface OptionsFor<E, R = never> extends Options<E, R> {
  readonly retryOn: (error: E) => boolean
}

/**
 * What a retry budget holds in its current window: logical calls (`requests`), retries granted (`retries`) and
 * the retries the window allows (`allowance` = max(ratio × requests, minPerSecond × window seconds)).
 *
 * @example
 * ```ts
 * import { Retry } from "effect-llm-resilience"
 * const spent = (s: Retry.BudgetSnapshot) => s.retries / Math.max(1, s.allowance)
 * ```
 * @since 0.1.0
 * @category Models
 */
export type BudgetSnapshot = WindowSnapshot

/**
 * A retry budget, shared by every call that uses it: over a sliding `window`, the retries granted may be at most
 * **max(`ratio` × the logical calls of the window, `minPerSecond` × the window in seconds)**. The floor is the
 * larger of the two, not added to the ratio (Envoy's rule; Finagle adds them): under heavy traffic retries stay
 * within `ratio` of it, and a quiet service can still retry. When the budget is spent, a failing call returns its
 * error without retrying. This is what keeps a full outage from multiplying traffic: with the defaults (0.2,
 * "10 seconds", 10 a second) the ratio governs from 500 calls a window up, and 1000 calls of one window against a
 * dead provider send 1.2 calls each (a sum would allow 1.3).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const budget = yield* Retry.makeBudget({ ratio: 0.1 })
 *   return Retry.policy({ maxRetries: 3, budget })
 * })
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Budget {
  readonly [RetryBudgetModule.BudgetTypeId]: typeof RetryBudgetModule.BudgetTypeId
  /** Records one logical call (the policy and combinator do this once per call). */
  readonly deposit: Effect.Effect<void>
  /** Takes one retry from the budget; false when it is spent. */
  readonly tryWithdraw: Effect.Effect<boolean>
  /** Requests, retries and the allowance of the current window. */
  readonly snapshot: Effect.Effect<BudgetSnapshot>
}

/**
 * Retry budget options.
 *
 * @example
 * ```ts
 * import { Retry } from "effect-llm-resilience"
 * const options: Retry.BudgetOptions = { ratio: 0.2, window: "10 seconds", minPerSecond: 10 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface BudgetOptions {
  /** Retries allowed per logical call of the window, in [0, 1000]. Defaults to 0.2. */
  readonly ratio?: number | undefined
  /** The sliding window (kept in ten buckets). Defaults to "10 seconds". */
  readonly window?: Duration.DurationInput | undefined
  /**
   * The floor: `minPerSecond` × window seconds retries per window are allowed however little traffic there is.
   * The allowance is the larger of this floor and `ratio` × calls, not their sum. Defaults to 10 (100 retries per
   * 10-second window).
   */
  readonly minPerSecond?: number | undefined
}

/**
 * The retry budget service, for a budget shared by every policy of an application.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * const usage = Effect.flatMap(Retry.RetryBudget, (budget) => budget.snapshot)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class RetryBudget extends Context.Tag("effect-llm-resilience/RetryBudget")<RetryBudget, Budget>() {}

/**
 * Builds a retry budget (validated: fails with InvalidOptions listing every bad field).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * const budget = Retry.makeBudget({ ratio: 0.2, window: "10 seconds", minPerSecond: 10 })
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeBudget = (options: BudgetOptions = {}): Effect.Effect<Budget, InvalidOptions> =>
  RetryBudgetModule.make(options)

/**
 * A layer holding one shared {@link RetryBudget}.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, Retry } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(Retry.policyWithBudget({ maxRetries: 3 })).pipe(
 *   Layer.provide(Retry.layerBudget({ ratio: 0.2 })),
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerBudget = (options: BudgetOptions = {}): Layer.Layer<RetryBudget, InvalidOptions> =>
  Layer.effect(RetryBudget, makeBudget(options))

/**
 * The retry budget service's layer: the same as {@link layerBudget}.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, Retry } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(Retry.policyWithBudget()).pipe(
 *   Layer.provide(Retry.layer({ ratio: 0.1, minPerSecond: 5 })),
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer: (options?: BudgetOptions) => Layer.Layer<RetryBudget, InvalidOptions> = layerBudget

/**
 * True for a retry budget.
 *
 * @example
 * ```ts
 * import { Retry } from "effect-llm-resilience"
 * Retry.isBudget({}) // false
 * ```
 * @since 0.1.0
 * @category Guards
 */
export const isBudget: (u: unknown) => u is Budget = RetryBudgetModule.isBudget

/**
 * The retry decision of `options` as a Schedule over errors of type E, for `Effect.retry`: backoff with jitter
 * (or your `schedule`), Retry-After, `maxRetryAfter`, `retryOn`, `maxRetries`, metrics and `onRetry`. It outputs
 * each wait. For an LlmError every option is optional; for any other error type `retryOn` is required. A budget
 * needs one deposit per logical call, which a Schedule cannot make: use {@link withRetry} for budgets. Throws
 * InvalidOptions (every failing path listed) on bad options.
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * declare const call: Effect.Effect<string, import("effect-llm-resilience").LlmError.LlmError>
 * const retried = Effect.retry(call, Retry.schedule({ maxRetries: 2, jitter: "none" }))
 *
 * class HttpFailure extends Data.TaggedError("HttpFailure")<{ status: number }> {}
 * declare const fetchUser: Effect.Effect<string, HttpFailure>
 * const alsoRetried = Effect.retry(fetchUser, Retry.schedule({ retryOn: (e: HttpFailure) => e.status >= 500 }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const schedule: {
  <E, R = never>(options: Omit<OptionsFor<E, R>, "budget">): Schedule.Schedule<Duration.Duration, E, R>
  <R = never>(
    options?: Omit<Options<LlmError.LlmError, R>, "budget">
  ): Schedule.Schedule<Duration.Duration, LlmError.LlmError, R>
} = <E, R>(
  options: Omit<Options<E, R>, "budget"> = RetryOptions.defaults as Options<E, R>
): Schedule.Schedule<Duration.Duration, E, R> => {
  const unaccepted = RetryOptions.budgetNotAccepted(options, "a Schedule cannot count logical calls: use withRetry or policy")
  if (unaccepted !== undefined) throw unaccepted
  return internal.makeSchedule(RetryOptions.resolve(options), undefined, undefined)
}

/**
 * Retries an Effect (dual), whatever its error type: A and E are unchanged, R gains what the `schedule` needs.
 *
 * - When E is an LlmError, every option is optional: `retryOn` defaults to `LlmError.isRetryable` and
 *   `retryAfter` to `LlmError.retryAfter`.
 * - For any other E (an HTTP call, a query), `retryOn` is required ({@link OptionsFor}): the types reject
 *   `withRetry({ maxRetries: 3 })` on such an Effect rather than let it retry nothing, or everything.
 *
 * Options are validated once per options object; an invalid one never throws: the returned Effect dies with the
 * InvalidOptions (every failing path listed), so E stays the Effect's own.
 * Each call deposits into the `budget`, if any. A call that succeeds the first time builds no schedule state.
 *
 * @example
 * ```ts
 * import { Data, Duration, Effect, Option, Schedule } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * declare const call: Effect.Effect<string, import("effect-llm-resilience").LlmError.LlmError>
 * const retried = call.pipe(Retry.withRetry({ maxRetries: 3, baseDelay: "500 millis" }))
 *
 * class HttpFailure extends Data.TaggedError("HttpFailure")<{ status: number; retryAfterMs?: number }> {}
 * declare const fetchUser: Effect.Effect<string, HttpFailure>
 * const user = fetchUser.pipe(Retry.withRetry({
 *   retryOn: (e) => e.status === 429 || e.status >= 500,
 *   retryAfter: (e) => Option.map(Option.fromNullable(e.retryAfterMs), Duration.millis),
 *   schedule: Schedule.exponential("200 millis").pipe(Schedule.jittered),
 *   maxRetries: 4
 * })) // Effect<string, HttpFailure>
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withRetry: {
  <E, R2 = never>(options: OptionsFor<E, R2>): <A, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | R2>
  <R2 = never>(
    options?: Options<LlmError.LlmError, R2>
  ): <A, E extends LlmError.LlmError, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R | R2>
  <A, E, R, R2 = never>(self: Effect.Effect<A, E, R>, options: OptionsFor<E, R2>): Effect.Effect<A, E, R | R2>
  <A, E extends LlmError.LlmError, R, R2 = never>(
    self: Effect.Effect<A, E, R>,
    options?: Options<E, R2>
  ): Effect.Effect<A, E, R | R2>
} = function(...args: ReadonlyArray<unknown>) {
  if (Effect.isEffect(args[0])) return retried(args[0], RetryOptions.resolveEither(args[1] as AnyOptions))
  const r = RetryOptions.resolveEither(args[0] as AnyOptions)
  return (self: Effect.Effect<unknown, unknown, unknown>) => retried(self, r)
} as typeof withRetry

// Bad options are the returned Effect's failure, never a throw: a defect, since the combinator keeps E as it is.
const retried = <A, E, R>(self: Effect.Effect<A, E, R>, r: Either.Either<internal.Resolved<E, R>, InvalidOptions>) =>
  Either.isRight(r) ? internal.retryEffect(self, r.right, undefined) : Effect.die(r.left)

// What the implementations of the overloaded combinators see once the types have been checked by the overloads.
type AnyOptions = Options<unknown, unknown> | undefined

/**
 * Retries a stream (dual), whatever its error type, only before it has sent anything downstream: after that, a
 * retry would duplicate elements, so the error surfaces. The options and types are those of {@link withRetry}
 * (for a non-LlmError error type, `retryOn` is required).
 *
 * @example
 * ```ts
 * import { Data, Stream } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * declare const chunks: Stream.Stream<string, import("effect-llm-resilience").LlmError.LlmError>
 * const retried = chunks.pipe(Retry.withStreamRetry({ maxRetries: 2 }))
 *
 * class FeedDown extends Data.TaggedError("FeedDown")<{ status: number }> {}
 * declare const feed: Stream.Stream<string, FeedDown>
 * const resilient = feed.pipe(Retry.withStreamRetry({ retryOn: (e) => e.status >= 500 }))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withStreamRetry: {
  <E, R2 = never>(options: OptionsFor<E, R2>): <A, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<A, E, R | R2>
  <R2 = never>(
    options?: Options<LlmError.LlmError, R2>
  ): <A, E extends LlmError.LlmError, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<A, E, R | R2>
  <A, E, R, R2 = never>(self: Stream.Stream<A, E, R>, options: OptionsFor<E, R2>): Stream.Stream<A, E, R | R2>
  <A, E extends LlmError.LlmError, R, R2 = never>(
    self: Stream.Stream<A, E, R>,
    options?: Options<E, R2>
  ): Stream.Stream<A, E, R | R2>
} = function(...args: ReadonlyArray<unknown>) {
  if (isStream(args[0])) return retriedStream(args[0], RetryOptions.resolveEither(args[1] as AnyOptions))
  const r = RetryOptions.resolveEither(args[0] as AnyOptions)
  return (self: Stream.Stream<unknown, unknown, unknown>) => retriedStream(self, r)
} as typeof withStreamRetry

const retriedStream = <A, E, R>(
  self: Stream.Stream<A, E, R>,
  r: Either.Either<internal.Resolved<E, R>, InvalidOptions>
) => Either.isRight(r) ? internal.retryStream(self, r.right, undefined) : Stream.die(r.left)

/**
 * The retry policy (LLM middleware): retries `complete`, and `stream` before it started (its first text). Place it inside
 * Fallback and outside CircuitBreaker and the per-attempt Timeout. Every retry is counted in
 * `llm_retries_total` (labels `model`, `error`). Throws InvalidOptions (every failing path listed) on bad options.
 *
 * @example
 * ```ts
 * import { FakeLlm, LlmClient, Retry } from "effect-llm-resilience"
 * import { Layer } from "effect"
 * const Live = LlmClient.layerWith(Retry.policy({ maxRetries: 3, jitter: "full" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: Options = RetryOptions.defaults): LlmClient.Policy => makePolicy(RetryOptions.resolve(options))

const makePolicy = (r: internal.Resolved<LlmError.LlmError>): LlmClient.Policy =>
  LlmClient.policy({
    name: "Retry",
    complete: (next) => (request) => internal.retryEffect(next(request), r, request.model, true),
    stream: (next) => (request) => internal.retryStream(next(request), r, request.model),
    // Its waits before a retry end at the current deadline: a Timeout above needs no fiber of its own.
    keepsDeadline: true
  })

/**
 * Like {@link policy}, with the shared {@link RetryBudget} from the context (so every policy built this way
 * spends one budget). Fails with InvalidOptions on bad options.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, Retry } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(Retry.policyWithBudget({ maxRetries: 3 })).pipe(
 *   Layer.provide(Retry.layerBudget()),
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policyWithBudget = (
  options: Omit<Options, "budget"> = RetryOptions.defaults
): Effect.Effect<LlmClient.Policy, InvalidOptions, RetryBudget> =>
  Effect.suspend(() => {
    const unaccepted = RetryOptions.budgetNotAccepted(options, "the budget is the RetryBudget service's")
    if (unaccepted !== undefined) return Effect.fail(unaccepted)
    return Effect.flatMap(RetryBudget, (budget) =>
      Either.match(RetryOptions.resolveEither({ ...options, budget }), {
        onLeft: Effect.fail,
        onRight: (r) => Effect.succeed(makePolicy(r))
      }))
  })

const isStream = (u: unknown): u is Stream.Stream<unknown, unknown, unknown> =>
  typeof u === "object" && u !== null && Stream.StreamTypeId in u
