/**
 * Retries with exponential backoff and jitter that never storm: Retry-After is honoured (and a too-long one
 * hands over to a fallback at once), defects and interruptions are never retried, and a shared retry budget
 * caps retries across every call during an outage.
 *
 * A call that succeeds the first time builds no schedule state: the backoff Schedule is made on the first
 * failure only.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Either, Layer, Schedule, Schema, Stream } from "effect"
import * as Backoff from "./internal/backoff.js"
import { AnyFunction, FiniteDuration, strict } from "./internal/optionSchemas.js"
import * as Engine from "./internal/retry.js"
import { BudgetState, type BudgetSnapshot as WindowSnapshot } from "./internal/retryBudget.js"
import { decode, DurationInput, InvalidOptions } from "./InvalidOptions.js"
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
 * What `onRetry` receives before each retry's wait.
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
export interface RetryEvent {
  /** 1 for the first retry (the second call), 2 for the second, … */
  readonly retry: number
  /** The error that is retried. */
  readonly error: LlmError.LlmError
  /** The wait before the retry (the backoff, or the Retry-After when it is longer). */
  readonly delay: Duration.Duration
  /** The model, from the request (policy) or the error (combinator); "unknown" if neither says. */
  readonly model: string
}

/**
 * Retry options. Every field is optional; the defaults are written on each.
 *
 * @example
 * ```ts
 * import { Retry } from "effect-llm-resilience"
 * const options: Retry.Options = { maxRetries: 5, baseDelay: "500 millis", jitter: "equal" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Retries after the first call, so at most `maxRetries + 1` calls. Defaults to 3. */
  readonly maxRetries?: number | undefined
  /** The delay before the first retry (before jitter). Defaults to "1 second". */
  readonly baseDelay?: Duration.DurationInput | undefined
  /** Each retry's delay is the previous one × `factor` (≥ 1). Defaults to 2. */
  readonly factor?: number | undefined
  /** The cap on the computed delay (a Retry-After may exceed it). Must be ≥ `baseDelay`. Defaults to "30 seconds". */
  readonly maxDelay?: Duration.DurationInput | undefined
  /** Jitter mode. Defaults to "full". */
  readonly jitter?: Jitter | undefined
  /** Which errors to retry. Defaults to `LlmError.isRetryable`. */
  readonly retryOn?: ((error: LlmError.LlmError) => boolean) | undefined
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
  readonly onRetry?: ((event: RetryEvent) => void | Effect.Effect<void>) | undefined
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

const BudgetTypeId: unique symbol = Symbol.for("effect-llm-resilience/RetryBudget")

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
  readonly [BudgetTypeId]: typeof BudgetTypeId
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

const BudgetOptionsSchema = Schema.Struct({
  ratio: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.between(0, 1000))),
  window: Schema.optional(
    FiniteDuration.pipe(Schema.filter((d) => Duration.greaterThan(d, Duration.zero) || "Expected a positive duration"))
  ),
  minPerSecond: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.nonNegative()))
}).annotations(strict)

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
  Either.match(decode(BudgetOptionsSchema, "Retry.Budget", options), {
    onLeft: Effect.fail,
    onRight: (o) => Effect.sync(() => unsafeMakeBudget(o))
  })

const unsafeMakeBudget = (o: typeof BudgetOptionsSchema.Type): Budget => {
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
export const isBudget = (u: unknown): u is Budget => typeof u === "object" && u !== null && BudgetTypeId in u

const OptionsSchema = Schema.Struct({
  maxRetries: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  baseDelay: Schema.optional(FiniteDuration),
  factor: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1))),
  maxDelay: Schema.optional(FiniteDuration),
  jitter: Schema.optional(Schema.Literal("full", "equal", "decorrelated", "none")),
  retryOn: Schema.optional(AnyFunction),
  honorRetryAfter: Schema.optional(Schema.Boolean),
  maxRetryAfter: Schema.optional(DurationInput),
  budget: Schema.optional(Schema.declare(isBudget, { message: () => "Expected a Retry.Budget (Retry.makeBudget)" })),
  onRetry: Schema.optional(AnyFunction)
}).annotations(strict).pipe(
  Schema.filter((o) =>
    Duration.lessThan(o.maxDelay ?? Duration.seconds(30), o.baseDelay ?? Duration.seconds(1))
      ? { path: ["maxDelay"], message: "Expected maxDelay ≥ baseDelay" }
      : undefined
  )
)

const toResolved = (o: typeof OptionsSchema.Type, raw: Options): Engine.Resolved => ({
  maxRetries: o.maxRetries ?? 3,
  backoff: {
    baseMs: Duration.toMillis(o.baseDelay ?? Duration.seconds(1)),
    factor: o.factor ?? 2,
    maxMs: Duration.toMillis(o.maxDelay ?? Duration.seconds(30)),
    jitter: o.jitter ?? "full"
  },
  retryOn: raw.retryOn ?? LlmError.isRetryable,
  honorRetryAfter: o.honorRetryAfter ?? true,
  maxRetryAfterMs: Duration.toMillis(o.maxRetryAfter ?? Duration.seconds(60)),
  budget: raw.budget,
  onRetry: raw.onRetry
})

// Options objects are validated once: a data-first `withRetry(effect, options)` in a hot loop pays a lookup.
const resolvedCache = new WeakMap<Options, Engine.Resolved>()
const defaults: Options = {}

const resolveEither = (options: Options = defaults): Either.Either<Engine.Resolved, InvalidOptions> => {
  const cached = resolvedCache.get(options)
  if (cached !== undefined) return Either.right(cached)
  return Either.map(decode(OptionsSchema, "Retry", options), (decoded) => {
    const resolved = toResolved(decoded, options)
    resolvedCache.set(options, resolved)
    return resolved
  })
}

const resolve = (options?: Options): Engine.Resolved => Either.getOrThrowWith(resolveEither(options), (error) => error)

/**
 * The retry decision of `options` as a Schedule over LlmErrors, for `Effect.retry`: backoff with jitter,
 * Retry-After, `maxRetryAfter`, `retryOn`, `maxRetries`, metrics and `onRetry`. It outputs each wait. A budget
 * needs one deposit per logical call, which a Schedule cannot make: use {@link withRetry} for budgets.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * declare const call: Effect.Effect<string, import("effect-llm-resilience").LlmError.LlmError>
 * const retried = Effect.retry(call, Retry.schedule({ maxRetries: 2, jitter: "none" }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const schedule = (
  options: Omit<Options, "budget"> = defaults
): Schedule.Schedule<Duration.Duration, LlmError.LlmError> => {
  const unaccepted = budgetNotAccepted(options, "a Schedule cannot count logical calls: use withRetry or policy")
  if (unaccepted !== undefined) throw unaccepted
  return Engine.makeSchedule(resolve(options), undefined, undefined)
}

// For the constructors whose type leaves `budget` out: one passed anyway (from JavaScript, or through a cast)
// would be ignored or overridden, so it is reported instead.
const budgetNotAccepted = (options: object, why: string): InvalidOptions | undefined =>
  "budget" in options && (options as Options).budget !== undefined
    ? InvalidOptions.fromIssues("Retry", [{ path: "budget", message: `Not accepted here: ${why}` }])
    : undefined

/**
 * Retries an Effect whose error is an LlmError (dual). Options are validated when the combinator is built (an
 * invalid one throws InvalidOptions listing every path); each call deposits into the `budget`, if any.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * declare const call: Effect.Effect<string, import("effect-llm-resilience").LlmError.LlmError>
 * const retried = call.pipe(Retry.withRetry({ maxRetries: 3, baseDelay: "500 millis" }))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withRetry: {
  (options?: Options): <A, E extends LlmError.LlmError, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  <A, E extends LlmError.LlmError, R>(self: Effect.Effect<A, E, R>, options?: Options): Effect.Effect<A, E, R>
} = function<A, E extends LlmError.LlmError, R>(
  ...args: [options?: Options] | [self: Effect.Effect<A, E, R>, options?: Options]
) {
  if (Effect.isEffect(args[0])) return Engine.retryEffect(args[0], resolve(args[1]), undefined)
  const r = resolve(args[0] as Options | undefined)
  return (self: Effect.Effect<A, E, R>) => Engine.retryEffect(self, r, undefined)
} as typeof withRetry

/**
 * Retries a stream of an LlmError (dual), only before its first element has been emitted downstream: after
 * that, a retry would duplicate tokens, so the error surfaces.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { Retry } from "effect-llm-resilience"
 * declare const chunks: Stream.Stream<string, import("effect-llm-resilience").LlmError.LlmError>
 * const retried = chunks.pipe(Retry.withStreamRetry({ maxRetries: 2 }))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withStreamRetry: {
  (options?: Options): <A, E extends LlmError.LlmError, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<A, E, R>
  <A, E extends LlmError.LlmError, R>(self: Stream.Stream<A, E, R>, options?: Options): Stream.Stream<A, E, R>
} = function<A, E extends LlmError.LlmError, R>(
  ...args: [options?: Options] | [self: Stream.Stream<A, E, R>, options?: Options]
) {
  if (isStream(args[0])) return Engine.retryStream(args[0], resolve(args[1]), undefined)
  const r = resolve(args[0] as Options | undefined)
  return (self: Stream.Stream<A, E, R>) => Engine.retryStream(self, r, undefined)
} as typeof withStreamRetry

const isStream = (u: unknown): u is Stream.Stream<unknown, unknown, unknown> =>
  typeof u === "object" && u !== null && Stream.StreamTypeId in u

/**
 * The retry policy (LLM middleware): retries `complete`, and `stream` before its first chunk. Place it inside
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
export const policy = (options: Options = defaults): LlmClient.Policy => makePolicy(resolve(options))

const makePolicy = (r: Engine.Resolved): LlmClient.Policy =>
  LlmClient.policy({
    name: "retry",
    complete: (next) => (request) => Engine.retryEffect(next(request), r, request.model),
    stream: (next) => (request) => Engine.retryStream(next(request), r, request.model)
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
  options: Omit<Options, "budget"> = defaults
): Effect.Effect<LlmClient.Policy, InvalidOptions, RetryBudget> =>
  Effect.suspend(() => {
    const unaccepted = budgetNotAccepted(options, "the budget is the RetryBudget service's")
    if (unaccepted !== undefined) return Effect.fail(unaccepted)
    return Effect.flatMap(RetryBudget, (budget) =>
      Either.match(resolveEither({ ...options, budget }), {
        onLeft: Effect.fail,
        onRight: (r) => Effect.succeed(makePolicy(r))
      }))
  })
