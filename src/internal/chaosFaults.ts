/**
 * The ChaosServer's options (Schemas) and the pure fault decision: one uniform draw per request picks
 * exactly one outcome, so every rate is the exact probability of its outcome.
 */
import { Duration, Either, Schema } from "effect"
import { InvalidOptions } from "../InvalidOptions.js"
import { Quotas } from "./chaosQuota.js"
import { DurationInput } from "./durationInput.js"

// Exact optional fields: a bad value is reported once ("Expected …"), not also as "Expected undefined".
// Inputs go through `stripUndefined` first, so an explicit `undefined` still means "left out".
const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const Rate = Schema.Number.pipe(
  Schema.between(0, 1, { message: (issue) => `Expected a rate between 0 and 1, actual ${String(issue.actual)}` })
)

const ErrorStatus = Schema.Int.pipe(
  Schema.between(400, 599, { message: (issue) => `Expected an HTTP error status (400-599), actual ${String(issue.actual)}` })
)

/** How an error response says when to retry: `retry-after` seconds, `retry-after-ms`, or an HTTP date `date` seconds ahead. */
// Finite, and a date within about 30 years: `Infinity` or a date past Date's range would send "Infinity" or
// "Invalid Date" as the header.
const Wait = Schema.NonNegative.pipe(Schema.finite())

export const RetryAfterSpec = Schema.Struct({
  seconds: optional(Wait),
  ms: optional(Wait),
  date: optional(Wait.pipe(Schema.lessThanOrEqualTo(1e9)))
}).pipe(
  Schema.filter((spec) =>
    [spec.seconds, spec.ms, spec.date].filter((v) => v !== undefined).length === 1 ||
    "Expected exactly one of seconds, ms or date"
  )
)

/** @internal */
export type RetryAfterSpec = typeof RetryAfterSpec.Type

/** One injected error status and its rate. */
export const ErrorSpec = Schema.Struct({
  status: ErrorStatus,
  rate: Rate,
  retryAfter: optional(RetryAfterSpec),
  code: optional(Schema.String)
})

/** @internal */
export type ErrorSpec = typeof ErrorSpec.Type

/** A full outage: every request fails with `status` (503 when left out). */
export const OutageSpec = Schema.Struct({
  status: optional(ErrorStatus),
  retryAfter: optional(RetryAfterSpec),
  code: optional(Schema.String)
})

const FaultFields = Schema.Struct({
  errors: optional(Schema.Array(ErrorSpec)),
  latency: optional(DurationInput),
  jitter: optional(DurationInput),
  firstTokenDelay: optional(DurationInput),
  chunkDelay: optional(DurationInput),
  hangRate: optional(Rate),
  cutRate: optional(Rate),
  cutAfterChunks: optional(Schema.NonNegativeInt),
  malformedRate: optional(Rate),
  contentFilterRate: optional(Rate),
  outage: optional(OutageSpec)
})

type FaultFields = typeof FaultFields.Type

/** The sum of every outcome rate of a fault set. */
export const totalRate = (faults: FaultFields): number =>
  (faults.hangRate ?? 0) + (faults.malformedRate ?? 0) + (faults.cutRate ?? 0) + (faults.contentFilterRate ?? 0) +
  (faults.errors ?? []).reduce((sum, error) => sum + error.rate, 0)

/** A fault set; its rates must add up to at most 1 (each is the exact probability of its outcome). */
export const Faults = FaultFields.pipe(
  Schema.filter((faults) => {
    const total = totalRate(faults)
    return total <= 1 + 1e-9 || `Expected the rates (errors, hangRate, cutRate, malformedRate, contentFilterRate) to add up to at most 1, actual ${total}`
  })
)

/** @internal */
export type Faults = typeof Faults.Type

const faultConfigFields = {
  faults: optional(Faults),
  perModel: optional(Schema.Record({ key: Schema.String, value: Faults }))
}

// A model's overrides are merged over `faults` field by field, so each merged set must add up to at most 1 too
// (else the outcomes drawn last would silently get less than their rate).
const mergedRates = (config: {
  readonly faults?: Faults
  readonly perModel?: { readonly [model: string]: Faults }
}): ReadonlyArray<Schema.FilterIssue> =>
  Object.keys(config.perModel ?? {}).flatMap((model) => {
    const total = totalRate(resolve(config, model))
    return total <= 1 + 1e-9 ? [] : [{
      path: ["perModel", model],
      message: `Expected the rates merged over "faults" to add up to at most 1, actual ${total}`
    }]
  })

/** The fault settings `/_chaos/config` replaces: defaults for every model and per-model overrides. */
export const FaultConfig = Schema.Struct(faultConfigFields).pipe(Schema.filter(mergedRates))

/** @internal */
export type FaultConfig = typeof FaultConfig.Type

/** Every option of a ChaosServer. */
export const Options = Schema.Struct({
  port: optional(Schema.Int.pipe(Schema.between(0, 65535))),
  seed: optional(Schema.Int),
  models: optional(Schema.Array(Schema.NonEmptyString)),
  words: optional(Schema.Int.pipe(Schema.between(1, 100_000))),
  usage: optional(Schema.Boolean),
  toolCalls: optional(Schema.Literal("named", "offered", "forced")),
  batch: optional(Schema.Struct({
    completionTime: optional(DurationInput),
    failCustomIds: optional(Schema.Array(Schema.String)),
    failStatus: optional(ErrorStatus),
    expireAfterItems: optional(Schema.Int.pipe(Schema.nonNegative()))
  })),
  quotas: optional(Quotas),
  ...faultConfigFields
}).pipe(Schema.filter(mergedRates))

/** @internal */
export type Options = typeof Options.Type

/** The fault set of one model: the defaults with the model's overrides on top, field by field. */
export const resolve = (
  config: { readonly faults?: Faults; readonly perModel?: { readonly [model: string]: Faults } },
  model: string
): Faults => ({
  ...config.faults,
  // Own keys only: a request for model "constructor" must not pick up Object.prototype's.
  ...(config.perModel !== undefined && Object.hasOwn(config.perModel, model) ? config.perModel[model] : undefined)
})

/** What the server does with one request. */
export type Decision =
  | { readonly _tag: "ok" }
  | { readonly _tag: "error"; readonly error: ErrorSpec }
  | { readonly _tag: "hang" }
  | { readonly _tag: "cut" }
  | { readonly _tag: "malformed" }
  | { readonly _tag: "filtered" }

const ok: Decision = { _tag: "ok" }

/**
 * Picks the outcome of a request from one uniform draw `u` in [0, 1). An outage wins outright; otherwise the
 * unit interval is split, in this order, into hang, each error, malformed, cut and content-filter segments,
 * and whatever is left is a normal answer.
 */
export const decide = (faults: Faults, u: number): Decision => {
  if (faults.outage !== undefined) {
    const { code, retryAfter, status } = faults.outage
    return { _tag: "error", error: { status: status ?? 503, rate: 1, retryAfter, code } }
  }
  let edge = faults.hangRate ?? 0
  if (u < edge) return { _tag: "hang" }
  for (const error of faults.errors ?? []) {
    edge += error.rate
    if (u < edge) return { _tag: "error", error }
  }
  const rest: ReadonlyArray<readonly [number | undefined, Decision]> = [
    [faults.malformedRate, { _tag: "malformed" }],
    [faults.cutRate, { _tag: "cut" }],
    [faults.contentFilterRate, { _tag: "filtered" }]
  ]
  for (const [rate, decision] of rest) {
    edge += rate ?? 0
    if (u < edge) return decision
  }
  return ok
}

/** The stats label of an outcome: ok, error:<status>, hang, cut, malformed, filtered. */
export const outcomeLabel = (decision: Decision): string =>
  decision._tag === "error" ? `error:${decision.error.status}` : decision._tag

/** The delay before answering: `latency` plus a uniform share `u` of `jitter`. */
export const delayOf = (faults: Faults, u: number): Duration.Duration =>
  Duration.sum(faults.latency ?? Duration.zero, Duration.times(faults.jitter ?? Duration.zero, u))

/** Drops `undefined` values from plain objects and arrays (deeply), so they read as left-out fields. */
export const stripUndefined = (input: unknown): unknown => {
  if (Array.isArray(input)) return input.map(stripUndefined)
  if (typeof input !== "object" || input === null || Object.getPrototypeOf(input) !== Object.prototype) return input
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(input)) {
    if (value !== undefined) out[key] = stripUndefined(value)
  }
  return out
}

/**
 * Decodes options strictly: every failing path is listed and unknown keys are errors (a misspelt
 * `hangrate` must not be silently ignored).
 */
export const decodeStrict = <A, I>(
  schema: Schema.Schema<A, I, never>,
  input: unknown
): Either.Either<A, InvalidOptions> =>
  Either.mapLeft(
    Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(stripUndefined(input)),
    (error) => InvalidOptions.fromParseError("ChaosServer", error)
  )
