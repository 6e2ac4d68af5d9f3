/**
 * Deadlines for LLM calls: per attempt, for the whole logical call, for a stream's first chunk and for the gap
 * between chunks. A deadline fails with `LlmError.Timeout { phase, after, model }` and interrupts the call below
 * (so its HTTP request is aborted). A caller's own interruption stays an interruption, never a Timeout.
 *
 * A Timeout policy bounds what sits below it in the stack: place `Timeout.attempt(d)` innermost (below Retry,
 * so each call gets `d`) and `Timeout.total(d)` outermost (above Fallback and Retry, so the whole logical
 * call, waits included, gets `d`).
 *
 * @since 0.1.0
 */
import { withCurrentDeadline, withDeadline } from "./internal/deadline.js"
import { Duration, Effect, Either, Option, Schema, Stream } from "effect"
import { PositiveDuration, strict } from "./internal/optionSchemas.js"
import { hasProgress } from "./internal/streamProgress.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import * as LlmClient from "./LlmClient.js"
import { Timeout, type TimeoutPhase } from "./LlmError.js"

/**
 * Timeout options. Each is optional (at least one is required) and accepts any `Duration.DurationInput`;
 * `Duration.infinity` switches one off. There are no defaults: a deadline you did not set does not exist.
 *
 * @example
 * ```ts
 * import { Timeout } from "effect-llm-resilience"
 * const options: Timeout.Options = { firstToken: "10 seconds", idle: "5 seconds", total: "2 minutes" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Bounds one provider call (a whole stream, for streams). Phase "attempt". */
  readonly attempt?: Duration.DurationInput | undefined
  /** Bounds the whole logical call, when the policy sits above Retry and Fallback. Phase "total". */
  readonly total?: Duration.DurationInput | undefined
  /**
   * Streams only: bounds the wait until the stream started (its first text, finish reason or tool calls; empty
   * deltas do not count). Phase "firstToken".
   */
  readonly firstToken?: Duration.DurationInput | undefined
  /** Streams only: bounds the gap between two chunks (after the first). Phase "idle". */
  readonly idle?: Duration.DurationInput | undefined
}

/**
 * Options of the generic combinators: the deadlines, plus the `model` written into the Timeout error.
 *
 * @example
 * ```ts
 * import { Timeout } from "effect-llm-resilience"
 * const options: Timeout.CombinatorOptions = { attempt: "30 seconds", model: "gpt-4o" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface CombinatorOptions extends Options {
  /** The model named in the Timeout error. No default (left out of the error). */
  readonly model?: string | undefined
}

const deadlineFields = {
  attempt: Schema.optional(PositiveDuration),
  total: Schema.optional(PositiveDuration),
  firstToken: Schema.optional(PositiveDuration),
  idle: Schema.optional(PositiveDuration)
}

const noDeadline = (o: { readonly attempt?: unknown; readonly total?: unknown; readonly firstToken?: unknown; readonly idle?: unknown }) =>
  o.attempt === undefined && o.total === undefined && o.firstToken === undefined && o.idle === undefined
    ? { path: [], message: "Expected at least one of attempt, total, firstToken, idle" }
    : undefined

// The policy names the request's model in its errors: a `model` option there would be ignored, so it is rejected.
const PolicyOptionsSchema = Schema.Struct(deadlineFields).annotations(strict).pipe(Schema.filter(noDeadline))

const CombinatorOptionsSchema = Schema.Struct({ ...deadlineFields, model: Schema.optional(Schema.String) })
  .annotations(strict).pipe(Schema.filter(noDeadline))

type DecodedOptions = typeof PolicyOptionsSchema.Type

interface Deadline {
  readonly phase: TimeoutPhase
  readonly after: Duration.Duration
}

interface Resolved {
  /** The whole-call deadline: the shorter of attempt and total. */
  readonly whole: Deadline | undefined
  readonly firstToken: Duration.Duration | undefined
  readonly idle: Duration.Duration | undefined
}

const finite = (d: Duration.Duration | undefined): Duration.Duration | undefined =>
  d !== undefined && Duration.isFinite(d) ? d : undefined

const toResolved = (o: DecodedOptions): Resolved => {
  const attempt = finite(o.attempt)
  const total = finite(o.total)
  const whole: Deadline | undefined = attempt !== undefined && (total === undefined || Duration.lessThanOrEqualTo(attempt, total))
    ? { phase: "attempt", after: attempt }
    : total !== undefined
    ? { phase: "total", after: total }
    : undefined
  return { whole, firstToken: finite(o.firstToken), idle: finite(o.idle) }
}

// Options objects are validated once per schema (a data-first call in a hot loop pays a lookup).
const policyCache = new WeakMap<object, Resolved>()
const combinatorCache = new WeakMap<object, Resolved>()

const resolveEither = <A extends DecodedOptions, I>(
  schema: Schema.Schema<A, I>,
  cache: WeakMap<object, Resolved>,
  options: CombinatorOptions
): Either.Either<Resolved, InvalidOptions> => {
  const cached = cache.get(options)
  if (cached !== undefined) return Either.right(cached)
  return Either.map(decode(schema, "Timeout", options), (decoded) => {
    const resolved = toResolved(decoded)
    cache.set(options, resolved)
    return resolved
  })
}

const resolve = (options: CombinatorOptions): Resolved =>
  Either.getOrThrowWith(resolveEither(CombinatorOptionsSchema, combinatorCache, options), (error) => error)

const timeoutError = (phase: TimeoutPhase, after: Duration.Duration, model: string | undefined) =>
  model === undefined ? new Timeout({ phase, after }) : new Timeout({ phase, after, model })

const timeoutEffect = <A, E, R>(
  self: Effect.Effect<A, E, R>,
  r: Resolved,
  model: string | undefined
): Effect.Effect<A, E | Timeout, R> => {
  const whole = r.whole
  if (whole === undefined) return self
  return withDeadline(self, whole.after, () => timeoutError(whole.phase, whole.after, model))
}

/**
 * Bounds any Effect (dual), whatever its error type E: `attempt` or `total` (the shorter wins; its name is the
 * error's phase). When the deadline passes the effect is interrupted (and awaited), then the call fails with
 * `LlmError.Timeout`: the result's error is `E | Timeout`, A and R are unchanged. The effect's own errors pass
 * through unchanged. Options are validated when the combinator is built (InvalidOptions is thrown);
 * `firstToken` and `idle` only apply to streams.
 *
 * @example
 * ```ts
 * import { Data, Effect } from "effect"
 * import { Timeout } from "effect-llm-resilience"
 * declare const call: Effect.Effect<string>
 * const bounded = call.pipe(Timeout.withTimeout({ attempt: "30 seconds", model: "gpt-4o" }))
 *
 * class DbFailure extends Data.TaggedError("DbFailure")<{ code: string }> {}
 * declare const query: Effect.Effect<ReadonlyArray<string>, DbFailure>
 * const rows = Timeout.withTimeout(query, { attempt: "2 seconds" }) // Effect<ReadonlyArray<string>, DbFailure | Timeout>
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withTimeout: {
  (options: CombinatorOptions): <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.Effect<A, E | Timeout, R>
  <A, E, R>(self: Effect.Effect<A, E, R>, options: CombinatorOptions): Effect.Effect<A, E | Timeout, R>
} = function<A, E, R>(
  ...args: [CombinatorOptions] | [Effect.Effect<A, E, R>, CombinatorOptions]
) {
  if (!Effect.isEffect(args[0])) {
    const r = resolve(args[0])
    const model = args[0].model
    return (self: Effect.Effect<A, E, R>) => timeoutEffect(self, r, model)
  }
  return timeoutEffect(args[0], resolve(args[1]!), args[1]!.model)
} as typeof withTimeout

/**
 * Per wait for an element: the first within `firstToken` of the start, each later one within `idle` of the pull
 * that followed the previous one (so a slow consumer never counts as an idle producer). Pulls that bring back no
 * element (a filtered stream) do not restart the wait.
 */
const timeoutPulls = <A, E, R>(
  self: Stream.Stream<A, E, R>,
  r: Resolved,
  model: string | undefined
): Stream.Stream<A, E | Timeout, R> => {
  const { firstToken, idle } = r
  if (firstToken === undefined && idle === undefined) return self
  return Stream.unwrapScoped(Effect.map(Stream.toPull(self), (pull) => {
    let first = true
    // When the current wait began: the stream's first pull, or the first pull after an element.
    let since: number | undefined
    const pulled = Effect.tap(pull, (chunk) => {
      if (chunk.length === 0) return
      // Before the stream has started, elements that are not progress (an empty opening delta) neither end the
      // firstToken wait nor restart it (streamProgress.ts); after it, every element ends an idle wait.
      if (first && !hasProgress(chunk)) return
      first = false
      since = undefined
    })
    const timedPull = Effect.clockWith((clock) => {
      const now = clock.unsafeCurrentTimeMillis()
      if (since === undefined) since = now
      const after = first ? firstToken : idle
      if (after === undefined) return pulled
      const phase: TimeoutPhase = first ? "firstToken" : "idle"
      const onTimeout = () => Option.some<E | Timeout>(timeoutError(phase, after, model))
      const remaining = Duration.toMillis(after) - (now - since)
      return remaining > 0 ? withDeadline(pulled, Duration.millis(remaining), onTimeout) : Effect.fail(onTimeout())
    })
    return Stream.repeatEffectChunkOption(timedPull)
  }))
}

const timeoutStream = <A, E, R>(
  self: Stream.Stream<A, E, R>,
  r: Resolved,
  model: string | undefined
): Stream.Stream<A, E | Timeout, R> => {
  const paced = timeoutPulls(self, r, model)
  const whole = r.whole
  if (whole === undefined) return paced
  return Stream.interruptWhen(
    paced,
    Effect.zipRight(Effect.sleep(whole.after), Effect.fail(timeoutError(whole.phase, whole.after, model)))
  )
}

/**
 * Bounds any stream (dual), whatever its error type E: `firstToken` the wait for the first element, `idle` each
 * gap after it, and `attempt` / `total` the whole stream (the shorter wins). Fails with `LlmError.Timeout` and
 * interrupts the stream's producer: the result's error is `E | Timeout`.
 *
 * @example
 * ```ts
 * import { Stream } from "effect"
 * import { Timeout } from "effect-llm-resilience"
 * declare const chunks: Stream.Stream<string>
 * const bounded = chunks.pipe(Timeout.withStreamTimeout({ firstToken: "10 seconds", idle: "5 seconds" }))
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const withStreamTimeout: {
  (options: CombinatorOptions): <A, E, R>(self: Stream.Stream<A, E, R>) => Stream.Stream<A, E | Timeout, R>
  <A, E, R>(self: Stream.Stream<A, E, R>, options: CombinatorOptions): Stream.Stream<A, E | Timeout, R>
} = function<A, E, R>(
  ...args: [CombinatorOptions] | [Stream.Stream<A, E, R>, CombinatorOptions]
) {
  if (args.length === 1) {
    const r = resolve(args[0])
    const model = args[0].model
    return (self: Stream.Stream<A, E, R>) => timeoutStream(self, r, model)
  }
  return timeoutStream(args[0], resolve(args[1]), args[1].model)
} as typeof withStreamTimeout

/**
 * The timeout policy (LLM middleware). `complete` is bounded by `attempt` / `total`; `stream` also by
 * `firstToken` and `idle`. The Timeout error names the request's model. Throws InvalidOptions (every failing
 * path listed) on bad options or when no deadline is given.
 *
 * @example
 * ```ts
 * import { LlmClient, Retry, Timeout } from "effect-llm-resilience"
 * const stack = LlmClient.layerWith(
 *   Timeout.policy({ total: "2 minutes" }),
 *   Retry.policy({ maxRetries: 3 }),
 *   Timeout.policy({ attempt: "30 seconds", firstToken: "10 seconds", idle: "5 seconds" })
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy = (options: Options): LlmClient.Policy => {
  const r = Either.getOrThrowWith(resolveEither(PolicyOptionsSchema, policyCache, options), (error) => error)
  return LlmClient.policy({
    name: "Timeout",
    complete: (next, below) =>
      below?.enforcesDeadline === true && r.whole !== undefined
        ? handedDown(next, r.whole)
        : (request) => timeoutEffect(next(request), r, request.model),
    stream: (next) => (request) => timeoutStream(next(request), r, request.model),
    // Either way the call below ends by this Timeout's deadline, and any earlier one above it.
    keepsDeadline: true
  })
}

// When every step below keeps the deadline (the provider step enforces it, and each policy between waits on nothing
// past it), the deadline is handed down instead of racing a fiber against a timer: the provider aborts its request
// at the same instant and fails with the same Timeout, for a fraction of the cost.
const handedDown = (
  next: LlmClient.Complete,
  whole: { readonly phase: TimeoutPhase; readonly after: Duration.Duration }
): LlmClient.Complete => {
  const millis = Duration.toMillis(whole.after)
  return (request) =>
    Effect.clockWith((clock) =>
      withCurrentDeadline(next(request), {
        at: clock.unsafeCurrentTimeMillis() + millis,
        onTimeout: () => timeoutError(whole.phase, whole.after, request.model)
      })
    )
}

/**
 * A policy bounding each provider call: `Timeout.policy({ attempt: duration })`. Place it below Retry.
 *
 * @example
 * ```ts
 * import { Timeout } from "effect-llm-resilience"
 * const perCall = Timeout.attempt("30 seconds")
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const attempt = (duration: Duration.DurationInput): LlmClient.Policy => policy({ attempt: duration })

/**
 * A policy bounding the whole logical call: `Timeout.policy({ total: duration })`. Place it above Fallback and
 * Retry (outermost), so backoff waits and fallbacks count too.
 *
 * @example
 * ```ts
 * import { Timeout } from "effect-llm-resilience"
 * const overall = Timeout.total("2 minutes")
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const total = (duration: Duration.DurationInput): LlmClient.Policy => policy({ total: duration })
