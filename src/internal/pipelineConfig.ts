/**
 * Reading Pipeline options from Effect `Config`: the data fields of every pattern (functions cannot come from
 * configuration), each read by its option name, so a JSON or YAML file given to `ConfigProvider.fromJson` has the
 * very shape of the options object, and the environment names are the same names in CONSTANT_CASE
 * (`PIPELINE_RETRY_MAX_RETRIES`).
 *
 * Reading never fails on a value: a text that should be a number and is not is passed on as it is, so that the
 * pattern's own validation reports it beside every other bad value (one `InvalidOptions`, every path listed). Only a
 * JSON text that does not parse is reported here.
 */
import { Config, ConfigProvider, Effect } from "effect"
import type * as Bulkhead from "../Bulkhead.js"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as Fallback from "../Fallback.js"
import type * as Hedge from "../Hedge.js"
import type * as Idempotency from "../Idempotency.js"
import type { Issue } from "../InvalidOptions.js"
import type * as ModelTier from "../ModelTier.js"
import type * as PromptTrim from "../PromptTrim.js"
import type * as RateLimit from "../RateLimit.js"
import type * as ResponseCache from "../ResponseCache.js"
import type * as Retry from "../Retry.js"
import type * as Router from "../Router.js"
import type * as Timeout from "../Timeout.js"
import type * as TokenBudget from "../TokenBudget.js"

/** How a configured text becomes an option's value. */
export type Shape =
  | { readonly _tag: "text" | "number" | "boolean" | "duration" }
  | { readonly _tag: "list"; readonly of: Shape }
  | { readonly _tag: "object"; readonly fields: Readonly<Record<string, Shape>> }
  | { readonly _tag: "either"; readonly scalar: Shape; readonly object: Shape }

const text: Shape = { _tag: "text" }
const number: Shape = { _tag: "number" }
const boolean: Shape = { _tag: "boolean" }
/** A duration: "30 seconds", or a number of milliseconds. */
const duration: Shape = { _tag: "duration" }
const list = (of: Shape): Shape => ({ _tag: "list", of })
/** The fields of `O` that configuration can give (a misspelt name is a type error). */
const object = <O>(fields: { readonly [K in keyof O]?: Shape }): Shape => ({
  _tag: "object",
  fields: fields as Readonly<Record<string, Shape>>
})
const either = (scalar: Shape, object: Shape): Shape => ({ _tag: "either", scalar, object })

const window = object<{ calls: number; duration: unknown; buckets: number }>({ calls: number, duration, buckets: number })

/** The configurable fields of `Pipeline.Options`, by pattern. */
export const shape: Shape = object<Record<string, unknown>>({
  idempotency: object<Idempotency.Options>({
    ttl: duration, onInFlight: text, lease: duration, pollInterval: duration, requireKey: boolean
  }),
  tier: object<ModelTier.Options>({
    tiers: list(object<ModelTier.Tier>({ name: text, model: text })),
    heuristic: object<ModelTier.Thresholds>({ mediumTokens: number, complexTokens: number })
  }),
  cache: object<ResponseCache.Options>({
    ttl: duration, capacity: number, cacheFallbackAnswers: either(boolean, object({ ttl: duration }))
  }),
  budgets: list(object<TokenBudget.Options>({
    scope: text,
    limit: object<TokenBudget.Options["limit"]>({ tokens: number, usd: number }),
    period: either(text, object<{ rolling: unknown }>({ rolling: duration })),
    alertAt: list(number),
    name: text,
    reservationTtl: duration,
    defaultMaxOutputTokens: number,
    onUnpriced: text
  })),
  trim: object<PromptTrim.PolicyOptions>({ reserveForOutput: number, strategy: text, maxInputTokens: number, marker: boolean }),
  fallback: object<Fallback.Options>({ models: list(text) }),
  retry: object<Retry.Options>({
    maxRetries: number, baseDelay: duration, factor: number, maxDelay: duration, jitter: text,
    honorRetryAfter: boolean, maxRetryAfter: duration,
    budget: object<Retry.BudgetOptions>({ ratio: number, window: duration, minPerSecond: number })
  }),
  breaker: object<CircuitBreaker.PolicyOptions>({
    per: text,
    failureThreshold: number,
    failureRate: object<NonNullable<CircuitBreaker.Options["failureRate"]>>({ threshold: number, minimumCalls: number, window }),
    slowCall: object<NonNullable<CircuitBreaker.Options["slowCall"]>>({
      duration, rateThreshold: number, minimumCalls: number, window
    }),
    halfOpenAfter: either(duration, object<{ initial: unknown; max: unknown; factor: number }>({
      initial: duration, max: duration, factor: number
    })),
    halfOpenProbes: number,
    probeTimeout: duration
  }),
  hedge: object<Hedge.Options>({
    after: either(duration, object<Hedge.Percentile>({
      percentile: number, min: duration, initial: duration, minSamples: number, window: number
    })),
    maxHedges: number,
    deposit: boolean,
    onError: boolean
  }),
  // Deployments from configuration use the client below the pipeline (a client cannot be configured).
  router: object<Router.Options>({
    deployments: list(object<Router.Deployment>({
      id: text, model: text, providerModel: text, weight: number, rpm: number, tpm: number, maxConcurrent: number,
      contextWindow: number
    })),
    strategy: text,
    cooldown: duration,
    allowedFails: number,
    latencyAlpha: number,
    staleAfter: duration,
    exploration: number,
    failover: boolean,
    name: text,
    providerQuota: boolean
  }),
  rateLimit: object<RateLimit.Options>({
    rpm: number, tpm: number, per: text, onLimit: text, maxWait: duration, name: text, tpmCharge: text, providerQuota: boolean
  }),
  bulkhead: object<Bulkhead.PolicyOptions>({ maxConcurrent: number, maxQueue: number, maxWait: duration, per: text }),
  timeout: object<Timeout.Options>({ attempt: duration, total: duration, firstToken: duration, idle: duration })
})

/** A value read (undefined when nothing was configured) and the texts that could not be read. */
export interface Read {
  readonly value: unknown
  readonly issues: ReadonlyArray<Issue>
}

const none: Read = { value: undefined, issues: [] }
const numeric = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/

/** A scalar's text as the option's value; a text of the wrong kind is kept, for the pattern to report. */
const coerce = (kind: Shape["_tag"], raw: string): unknown => {
  if ((kind === "number" || kind === "duration") && numeric.test(raw)) return Number(raw)
  if (kind === "boolean" && /^(true|false)$/i.test(raw.trim())) return raw.trim().toLowerCase() === "true"
  return raw
}

const optionalText = (name: string) => Config.option(Config.string(name))

/** An object or a list of objects may also be one JSON text (the only way to give a list of objects in env). */
const fromJsonText = (name: string, path: string, expected: "object" | "list"): Config.Config<Read> =>
  Config.map(optionalText(name), (raw): Read => {
    if (raw._tag === "None") return none
    try {
      const value: unknown = JSON.parse(raw.value)
      const isList = Array.isArray(value)
      if ((expected === "list") === isList && typeof value === "object" && value !== null) return { value, issues: [] }
    } catch {
      // reported below
    }
    const what = expected === "list" ? "a JSON list" : "a JSON object"
    return { value: undefined, issues: [{ path, message: `Expected ${what} (or one setting per field), actual ${JSON.stringify(raw.value)}` }] }
  })

const fields = (shape: Readonly<Record<string, Shape>>, path: string): Config.Config<Read> =>
  Config.map(
    Config.all(Object.entries(shape).map(([key, field]) =>
      Config.map(read(field, key, path === "" ? key : `${path}.${key}`), (r) => [key, r] as const)
    )),
    (entries): Read => {
      const present = entries.filter(([, r]) => r.value !== undefined)
      return {
        value: present.length === 0 ? undefined : Object.fromEntries(present.map(([key, r]) => [key, r.value])),
        issues: entries.flatMap(([, r]) => r.issues)
      }
    }
  )

const isEmpty = (found: Read) => found.value === undefined && found.issues.length === 0

const scalar = (kind: Shape["_tag"], name: string): Config.Config<Read> =>
  Config.map(optionalText(name), (raw): Read => raw._tag === "None" ? none : { value: coerce(kind, raw.value), issues: [] })

/** The JSON object a text holds, if it is one (an `either` option given as one text). */
const jsonObjectText = (found: Read): Read => {
  if (typeof found.value !== "string" || !found.value.trim().startsWith("{")) return found
  try {
    return { value: JSON.parse(found.value), issues: [] }
  } catch {
    return found
  }
}

/** Both readings run (Config has no flatMap); the first that found something wins. */
const firstOf = (first: Config.Config<Read>, second: Config.Config<Read>): Config.Config<Read> =>
  Config.map(Config.all([first, second]), ([a, b]) => (isEmpty(a) ? b : a))

const listOf = (of: Shape, name: string, path: string): Config.Config<Read> => {
  if (of._tag !== "object") {
    return Config.map(
      Config.option(Config.array(Config.string(), name)),
      (raw): Read => raw._tag === "None" ? none : { value: raw.value.map((item) => coerce(of._tag, item)), issues: [] }
    )
  }
  const items = Config.map(Config.option(Config.array(fields(of.fields, ""), name)), (found): Read => {
    if (found._tag === "None" || found.value.every(isEmpty)) return none
    return {
      value: found.value.map((item) => item.value ?? {}),
      issues: found.value.flatMap((item, i) => item.issues.map((issue) => ({ ...issue, path: `${path}.${i}.${issue.path}` })))
    }
  })
  return firstOf(items, fromJsonText(name, path, "list"))
}

/** Reads `shape` at `name`; `path` is the option's path (`retry.maxRetries`) for issues. */
const read = (shape: Shape, name: string, path: string): Config.Config<Read> => {
  switch (shape._tag) {
    case "text":
    case "number":
    case "boolean":
    case "duration":
      return scalar(shape._tag, name)
    case "list":
      return listOf(shape.of, name, path)
    case "object":
      return firstOf(Config.nested(fields(shape.fields, path), name), fromJsonText(name, path, "object"))
    case "either": {
      const objectFields = shape.object._tag === "object"
        ? Config.nested(fields(shape.object.fields, path), name)
        : Config.succeed(none)
      return firstOf(objectFields, Config.map(read(shape.scalar, name, path), jsonObjectText))
    }
  }
}

/** The Config of the pipeline's options under `prefix` ("" for the top level, "a.b" for nested names). */
export const options = (prefix: string): Config.Config<Read> => {
  if (shape._tag !== "object") throw new Error("the pipeline shape is an object")
  const top = fields(shape.fields, "")
  return prefix === "" ? top : prefix.split(".").reduceRight((config, name) => Config.nested(config, name), top)
}

/**
 * Runs `effect` with the current ConfigProvider, falling back to the same provider with CONSTANT_CASE names: a file
 * (`ConfigProvider.fromJson`) answers the option names as written, the environment their CONSTANT_CASE form.
 */
export const withConstantCaseFallback = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.configProviderWith((provider) =>
    Effect.withConfigProvider(effect, ConfigProvider.orElse(provider, () => ConfigProvider.constantCase(provider)))
  )

/**
 * The options as read, with a `retry.budget` given as its options (`{ ratio, window, minPerSecond }`) made into a
 * budget shared by the pipeline's retries; its bad values are issues under `retry.budget`.
 */
export const withRetryBudget = (
  value: unknown,
  makeBudget: (options: unknown) => Effect.Effect<unknown, { readonly issues: ReadonlyArray<Issue> }>
): Effect.Effect<Read> => {
  const retry = typeof value === "object" && value !== null ? (value as { readonly retry?: unknown }).retry : undefined
  const budget = typeof retry === "object" && retry !== null ? (retry as { readonly budget?: unknown }).budget : undefined
  if (budget === undefined) return Effect.succeed({ value, issues: [] })
  return Effect.match(makeBudget(budget), {
    onFailure: (error): Read => ({
      value: { ...(value as object), retry: { ...(retry as object), budget: undefined } },
      issues: error.issues.map((issue) => ({ ...issue, path: issue.path === "" ? "retry.budget" : `retry.budget.${issue.path}` }))
    }),
    onSuccess: (made): Read => ({ value: { ...(value as object), retry: { ...(retry as object), budget: made } }, issues: [] })
  })
}
