/**
 * Retry's options: the Schema that validates them (misspelt keys refused, backoff keys refused beside a schedule,
 * every bad path listed through `InvalidOptions`) and their resolution to the engine's configuration, defaults
 * applied here, once per options object.
 */
import { Duration, Either, Schedule, Schema } from "effect"
import { decode, DurationInput, InvalidOptions } from "../InvalidOptions.js"
import type { Options } from "../Retry.js"
import { AnyFunction, FiniteDuration, strict } from "./optionSchemas.js"
import * as Engine from "./retry.js"
import { isBudget } from "./retryBudget.js"

// With a schedule, these would be silently unused: they are reported instead.
const backoffKeys = ["baseDelay", "factor", "maxDelay", "jitter"] as const

const OptionsSchema = Schema.Struct({
  maxRetries: Schema.optional(Schema.Int.pipe(Schema.nonNegative())),
  baseDelay: Schema.optional(FiniteDuration),
  factor: Schema.optional(Schema.Number.pipe(Schema.finite(), Schema.greaterThanOrEqualTo(1))),
  maxDelay: Schema.optional(FiniteDuration),
  jitter: Schema.optional(Schema.Literal("full", "equal", "decorrelated", "none")),
  schedule: Schema.optional(
    Schema.declare(Schedule.isSchedule, { message: () => "Expected a Schedule (effect's Schedule module)" })
  ),
  retryOn: Schema.optional(AnyFunction),
  retryAfter: Schema.optional(AnyFunction),
  honorRetryAfter: Schema.optional(Schema.Boolean),
  maxRetryAfter: Schema.optional(DurationInput),
  budget: Schema.optional(Schema.declare(isBudget, { message: () => "Expected a Retry.Budget (Retry.makeBudget)" })),
  onRetry: Schema.optional(AnyFunction)
}).annotations(strict).pipe(
  Schema.filter((o) => {
    const issues: Array<Schema.FilterIssue> = []
    if (o.schedule !== undefined) {
      for (const key of backoffKeys) {
        if (o[key] !== undefined) issues.push({ path: [key], message: "Not used with schedule: the schedule decides the delays" })
      }
    }
    if (Duration.lessThan(o.maxDelay ?? Duration.seconds(30), o.baseDelay ?? Duration.seconds(1))) {
      issues.push({ path: ["maxDelay"], message: "Expected maxDelay ≥ baseDelay" })
    }
    return issues
  })
)

const toResolved = <E, R>(o: typeof OptionsSchema.Type, raw: Options<E, R>): Engine.Resolved<E, R> => ({
  maxRetries: o.maxRetries ?? (raw.schedule === undefined ? 3 : Infinity),
  backoff: {
    baseMs: Duration.toMillis(o.baseDelay ?? Duration.seconds(1)),
    factor: o.factor ?? 2,
    maxMs: Duration.toMillis(o.maxDelay ?? Duration.seconds(30)),
    jitter: o.jitter ?? "full"
  },
  schedule: raw.schedule,
  retryOn: raw.retryOn ?? Engine.defaultRetryOn,
  retryAfter: (o.honorRetryAfter ?? true) ? raw.retryAfter ?? Engine.defaultRetryAfter : undefined,
  maxRetryAfterMs: Duration.toMillis(o.maxRetryAfter ?? Duration.seconds(60)),
  budget: raw.budget,
  onRetry: raw.onRetry
})

// Options objects are validated once: a data-first `withRetry(effect, options)` in a hot loop pays a lookup.
// (The value is the Resolved of the options object it is keyed by, so it has that object's E and R.)
const resolvedCache = new WeakMap<object, unknown>()
/** The options of a call without any. */
export const defaults: Options = {}

/** The options decoded once per options object (every bad path listed) and resolved, defaults applied. */
export const resolveEither = <E, R>(
  options: Options<E, R> = defaults as Options<E, R>
): Either.Either<Engine.Resolved<E, R>, InvalidOptions> => {
  const cached = resolvedCache.get(options)
  if (cached !== undefined) return Either.right(cached as Engine.Resolved<E, R>)
  return Either.map(decode(OptionsSchema, "Retry", options), (decoded) => {
    const resolved = toResolved(decoded, options)
    resolvedCache.set(options, resolved)
    return resolved
  })
}

/** {@link resolveEither}, throwing its InvalidOptions (for the constructors that return a value, not an Effect). */
export const resolve = <E, R>(options?: Options<E, R>): Engine.Resolved<E, R> =>
  Either.getOrThrowWith(resolveEither(options), (error) => error)

// For the constructors whose type leaves `budget` out: one passed anyway (from JavaScript, or through a cast)
// would be ignored or overridden, so it is reported instead.
export const budgetNotAccepted = (options: object, why: string): InvalidOptions | undefined =>
  "budget" in options && (options as Options).budget !== undefined
    ? InvalidOptions.fromIssues("Retry", [{ path: "budget", message: `Not accepted here: ${why}` }])
    : undefined
