/**
 * TokenBudget's options: the Schema that validates them (misspelt keys refused, every bad path listed through
 * `InvalidOptions`) and their resolution to the engine's configuration, each default applied here.
 */
import { Duration, Either, Schema } from "effect"
import { DurationInput, decode, type InvalidOptions } from "../InvalidOptions.js"
import type { Options } from "../TokenBudget.js"
import type { Period } from "./budgetPeriod.js"
import { periodSchema, strict } from "./optionSchemas.js"
import { type Config, scopeKindOf } from "./tokenBudget.js"

const optional = <A, I>(schema: Schema.Schema<A, I>) => Schema.optionalWith(schema, { exact: true })

const Fraction = Schema.Number.pipe(
  Schema.filter((n) => (n > 0 && n <= 1) || `Expected a fraction in (0, 1], actual ${n}`)
)

const Limit = Schema.Struct({
  tokens: optional(Schema.Int.pipe(Schema.nonNegative())),
  usd: optional(Schema.Number.pipe(Schema.nonNegative(), Schema.finite()))
}).annotations(strict).pipe(
  Schema.filter((limit) =>
    limit.tokens !== undefined || limit.usd !== undefined || "Expected at least one limit: tokens or usd"
  )
)

const PositiveDuration = DurationInput.pipe(
  Schema.filter((d) => Duration.toMillis(d) >= 1 || "Expected a duration of at least 1 millisecond")
)

const RollingPeriod = Schema.Struct({
  rolling: PositiveDuration,
  buckets: optional(Schema.Int.pipe(Schema.between(1, 10_000)))
}).annotations(strict)

const PeriodSchema = periodSchema(RollingPeriod, "{ rolling: duration }")

const ScopeSchema = Schema.declare(
  (u: unknown): u is Options["scope"] => u === "global" || u === "user" || typeof u === "function",
  { message: (issue) => `Expected "global", "user" or a function of the request, actual ${JSON.stringify(issue.actual)}` }
)

const OptionsSchema = Schema.Struct({
  scope: ScopeSchema,
  limit: Limit,
  period: PeriodSchema,
  alertAt: optional(Schema.Array(Fraction)),
  name: optional(Schema.NonEmptyString),
  reservationTtl: optional(PositiveDuration),
  defaultMaxOutputTokens: optional(Schema.Int.pipe(Schema.positive())),
  onUnpriced: optional(Schema.Literal("fail", "ignoreUsd"))
}).annotations(strict)

const periodOf = (input: typeof PeriodSchema.Type): Period =>
  typeof input === "string"
    ? { _tag: "Calendar", unit: input }
    : { _tag: "Rolling", durationMs: Duration.toMillis(input.rolling), buckets: input.buckets ?? 60 }

const periodLabel = (period: Period): string =>
  period._tag === "Calendar" ? period.unit : `rolling-${Duration.format(Duration.millis(period.durationMs))}`

/** The options decoded (every bad path listed) and resolved to the engine's configuration, defaults applied. */
export const resolve = (options: Options): Either.Either<Config, InvalidOptions> =>
  Either.map(decode(OptionsSchema, "TokenBudget", options), (o) => {
    const period = periodOf(o.period)
    return {
      name: o.name ?? `${scopeKindOf(o.scope)}-${periodLabel(period)}`,
      scope: o.scope,
      limit: o.limit,
      period,
      alertAt: [...new Set(o.alertAt ?? [0.8, 1])].sort((a, b) => a - b),
      leaseMs: Duration.toMillis(o.reservationTtl ?? Duration.minutes(10)),
      defaultMaxOutputTokens: o.defaultMaxOutputTokens,
      onUnpriced: o.onUnpriced ?? "fail"
    }
  })
