/**
 * Validation of the circuit breaker options into the serializable `Config` of the state machine.
 * Every failing path is collected before failing.
 */
import { Duration, Either, Schema } from "effect"
import type * as Llm from "../Llm.js"
import { type Issue, InvalidOptions } from "../InvalidOptions.js"
import type { Config, WindowConfig } from "./breaker.js"
import { DurationInput } from "./durationInput.js"
import { strict } from "./optionSchemas.js"

/** Defaults, in one place (the docs quote them). */
export const defaults = {
  failureThreshold: 5,
  minimumCalls: 10,
  window: { durationMs: 60_000, buckets: 10 },
  halfOpenAfterMs: 30_000,
  backoffFactor: 2,
  halfOpenProbes: 1,
  probeTimeoutMs: 5 * 60_000
} as const

/** Upper bounds of the window sizes. */
export const limits = { calls: 10_000, buckets: 1_000 } as const

/** The option names each object accepts; any other name is reported (a misspelt option would be ignored). */
const known = {
  common: ["failureThreshold", "failureRate", "slowCall", "halfOpenAfter", "halfOpenProbes", "probeTimeout", "countAsFailure"],
  failureRate: ["threshold", "minimumCalls", "window"],
  slowCall: ["duration", "rateThreshold", "minimumCalls", "window"]
} as const

/** Which constructor the options are for: `make` takes a `key`, `policy` a `per`. */
export type Target = "make" | "policy"

const AtLeastOne = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
const Ratio = Schema.Number.pipe(
  Schema.filter((n) => (n > 0 && n <= 1) || `Expected a ratio in (0, 1], actual ${n}`)
)
const Factor = Schema.Number.pipe(
  Schema.filter((n) => (Number.isFinite(n) && n >= 1) || `Expected a finite factor ≥ 1, actual ${n}`)
)
const Positive = DurationInput.pipe(
  Schema.filter((d) => {
    const ms = Duration.toMillis(d)
    if (!Number.isFinite(ms)) return "Expected a finite duration"
    return ms >= 1 || `Expected at least 1 millisecond, actual ${Duration.format(d)}`
  })
)
const Fn = Schema.declare((u: unknown): u is (...args: ReadonlyArray<never>) => unknown => typeof u === "function", {
  identifier: "Function",
  message: () => "Expected a function"
})
// Upper bounds keep every state update small: a window is copied on each recorded outcome.
const WindowShape = Schema.Struct({
  calls: Schema.optional(AtLeastOne.pipe(Schema.lessThanOrEqualTo(limits.calls))),
  duration: Schema.optional(Positive),
  buckets: Schema.optional(AtLeastOne.pipe(Schema.lessThanOrEqualTo(limits.buckets)))
}).annotations(strict)
const BackoffShape = Schema.Struct({ initial: Positive, max: Positive, factor: Schema.optional(Factor) }).annotations(strict)
const Per = Schema.Union(Schema.Literal("model", "provider"), Fn)
const ObjectShape = Schema.Record({ key: Schema.String, value: Schema.Unknown })

/** The decoded options. */
export interface Decoded {
  readonly config: Config
  readonly key: string | undefined
  readonly per: "model" | "provider" | ((request: Llm.ChatRequest) => string) | undefined
  readonly countAsFailure: ((error: unknown) => boolean) | undefined
}

class Collector {
  readonly issues: Array<Issue> = []
  field<A, I>(schema: Schema.Schema<A, I, never>, path: string, input: unknown): A | undefined {
    const result = Schema.decodeUnknownEither(schema, { errors: "all" })(input)
    if (Either.isRight(result)) return result.right
    for (const issue of InvalidOptions.fromParseError("", result.left).issues) {
      this.issues.push({ path: [path, issue.path].filter((p) => p !== "").join("."), message: issue.message })
    }
    return undefined
  }
  add(path: string, message: string): void {
    this.issues.push({ path, message })
  }
  /** Reports every key of `fields` (with a defined value) that is not in `allowed`. */
  unknown(prefix: string, fields: Fields | undefined, allowed: ReadonlyArray<string>): void {
    if (fields === undefined) return
    for (const name of Object.keys(fields)) {
      if (fields[name] === undefined || allowed.includes(name)) continue
      this.add(prefix === "" ? name : `${prefix}.${name}`, `Unknown option; expected one of: ${allowed.join(", ")}`)
    }
  }
}

const decodeWindow = (c: Collector, path: string, input: unknown): WindowConfig | undefined => {
  const shape = c.field(WindowShape, path, input)
  if (shape === undefined) return undefined
  const raw = input as Fields
  if ((raw.calls === undefined) === (raw.duration === undefined)) {
    c.add(path, "Expected exactly one of { calls: n } or { duration }")
    return undefined
  }
  if (shape.calls !== undefined) {
    if (shape.buckets !== undefined) c.add(`${path}.buckets`, "buckets only applies to a { duration } window")
    return { kind: "calls", size: shape.calls }
  }
  return {
    kind: "time",
    durationMs: Duration.toMillis(shape.duration!),
    buckets: shape.buckets ?? defaults.window.buckets
  }
}

const decodeSampling = (
  c: Collector,
  path: string,
  minimumCalls: number | undefined,
  windowInput: unknown
): { readonly window: WindowConfig | undefined; readonly minimumCalls: number } => {
  const window = windowInput === undefined
    ? { kind: "time" as const, ...defaults.window }
    : decodeWindow(c, `${path}.window`, windowInput)
  if (window?.kind === "calls" && minimumCalls !== undefined && minimumCalls > window.size) {
    c.add(`${path}.minimumCalls`, `Expected at most window.calls (${window.size}), actual ${minimumCalls}: the circuit could never open`)
  }
  const fallback = window?.kind === "calls" ? Math.min(defaults.minimumCalls, window.size) : defaults.minimumCalls
  return { window, minimumCalls: minimumCalls ?? fallback }
}

const decodeHalfOpenAfter = (c: Collector, input: unknown): Config["halfOpenAfter"] | undefined => {
  if (input === undefined) return { initialMs: defaults.halfOpenAfterMs, maxMs: defaults.halfOpenAfterMs, factor: 1 }
  const isBackoff = typeof input === "object" && input !== null && !Array.isArray(input) && !Duration.isDuration(input)
  if (!isBackoff) {
    const d = c.field(Positive, "halfOpenAfter", input)
    return d === undefined ? undefined : { initialMs: Duration.toMillis(d), maxMs: Duration.toMillis(d), factor: 1 }
  }
  const b = c.field(BackoffShape, "halfOpenAfter", input)
  if (b === undefined) return undefined
  const initialMs = Duration.toMillis(b.initial)
  const maxMs = Duration.toMillis(b.max)
  if (maxMs < initialMs) c.add("halfOpenAfter.max", `Expected max ≥ initial (${Duration.format(b.initial)})`)
  return { initialMs, maxMs, factor: b.factor ?? defaults.backoffFactor }
}

type Fields = Readonly<Record<string, unknown>>

const optional = <A, I>(c: Collector, schema: Schema.Schema<A, I, never>, path: string, input: unknown): A | undefined =>
  input === undefined ? undefined : c.field(schema, path, input)

const section = (c: Collector, path: string, input: unknown): Fields | undefined =>
  input === undefined ? undefined : c.field(ObjectShape, path, input)

/**
 * Decodes breaker options into a Config, listing every failing path. `kind` says which constructor they are for
 * (`make` accepts `key`, `policy` accepts `per`; without it both are accepted).
 */
export const decodeOptions = (target: string, input: unknown, kind?: Target): Either.Either<Decoded, InvalidOptions> => {
  const c = new Collector()
  const top = c.field(ObjectShape, "", input ?? {}) ?? {}
  const extra = kind === "make" ? ["key"] : kind === "policy" ? ["per"] : ["key", "per"]
  c.unknown("", top, [...known.common, ...extra])
  const key = optional(c, Schema.NonEmptyString, "key", top.key)
  const per = optional(c, Per, "per", top.per)
  const failureThreshold = optional(c, AtLeastOne, "failureThreshold", top.failureThreshold)
  const halfOpenProbes = optional(c, AtLeastOne, "halfOpenProbes", top.halfOpenProbes)
  const probeTimeout = optional(c, Positive, "probeTimeout", top.probeTimeout)
  const countAsFailure = optional(c, Fn, "countAsFailure", top.countAsFailure)
  const rate = section(c, "failureRate", top.failureRate)
  const slow = section(c, "slowCall", top.slowCall)
  c.unknown("failureRate", rate, known.failureRate)
  c.unknown("slowCall", slow, known.slowCall)
  const threshold = rate === undefined ? undefined : c.field(Ratio, "failureRate.threshold", rate.threshold)
  const slowDuration = slow === undefined ? undefined : c.field(Positive, "slowCall.duration", slow.duration)
  const slowRate = slow === undefined ? undefined : c.field(Ratio, "slowCall.rateThreshold", slow.rateThreshold)
  let sampling: ReturnType<typeof decodeSampling> | undefined
  if (rate !== undefined) {
    sampling = decodeSampling(c, "failureRate", optional(c, AtLeastOne, "failureRate.minimumCalls", rate.minimumCalls), rate.window)
    if (slow?.window !== undefined) c.add("slowCall.window", "Set the window on failureRate: both rules read one window")
    if (slow?.minimumCalls !== undefined) {
      c.add("slowCall.minimumCalls", "Set minimumCalls on failureRate: both rules read one window")
    }
  } else if (slow !== undefined) {
    sampling = decodeSampling(c, "slowCall", optional(c, AtLeastOne, "slowCall.minimumCalls", slow.minimumCalls), slow.window)
  }
  const halfOpenAfter = decodeHalfOpenAfter(c, top.halfOpenAfter)
  if (c.issues.length > 0 || halfOpenAfter === undefined) return Either.left(new InvalidOptions({ target, issues: c.issues }))
  const config: Config = {
    failureThreshold: failureThreshold ?? (rate === undefined ? defaults.failureThreshold : null),
    failureRate: threshold ?? null,
    slowCall: slowDuration === undefined || slowRate === undefined
      ? null
      : { durationMs: Duration.toMillis(slowDuration), rateThreshold: slowRate },
    window: sampling?.window ?? null,
    minimumCalls: sampling?.minimumCalls ?? defaults.minimumCalls,
    halfOpenAfter,
    halfOpenProbes: halfOpenProbes ?? defaults.halfOpenProbes,
    probeTimeoutMs: probeTimeout === undefined ? defaults.probeTimeoutMs : Duration.toMillis(probeTimeout)
  }
  return Either.right({ config, key, per: per as Decoded["per"], countAsFailure: countAsFailure as Decoded["countAsFailure"] })
}
