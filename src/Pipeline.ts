/**
 * One documented default order of every policy, built from one options object.
 *
 * ```
 * ResponseCache → Idempotency → TokenBudget(s) → PromptTrim → Fallback → Retry → Hedge → Router → CircuitBreaker → RateLimit → Bulkhead → Timeout → provider
 * with a tier:  Idempotency → ModelTier → ResponseCache → TokenBudget(s) → PromptTrim → Fallback → …
 * ```
 *
 * (Both lines are rendered from the one table below, {@link order}; a test checks this header and the docs against it.)
 *
 * Why this order: a cache hit costs nothing, not even an idempotency claim, so the cache runs first (a request with
 * an explicit `idempotencyKey` skips it when idempotency is configured: it gets the outcome recorded for its key);
 * an idempotent replay happens before any budget is spent. A tier picks the model before anything that keys or prices a call by
 * its model: the cache (it keeps only answers from the requested model, so above the tier a request for a
 * placeholder model such as `"auto"` would never be stored; below it, the answer is stored under the model the
 * tier chose), the budgets (they reserve at the real model's price and charge every escalated call) and the trim
 * (the prompt fits the chosen model's window); idempotency stays above the tier, where an escalation to another
 * model does not change the payload recorded for its key. Budgets reserve before the prompt is trimmed (on a long
 * prompt the reservation over-estimates, and the difference is released when the actual usage is committed); the
 * fallback chain wraps retries, so each model is retried before the next one takes over; a hedge is one attempt for
 * Retry, and each hedge is routed again (the Router turns the model name into a deployment, so each retry or hedge
 * may go to another one); the breaker sits inside retry, fallback and the router, so an open breaker fails at once
 * and the router or fallback moves on; the rate limit and bulkhead guard
 * each provider call; the timeout bounds each attempt (put a `total` deadline around the whole pipeline with
 * `Timeout.policy({ total })` as an extra outer policy if you need one).
 *
 * Every option is optional: a pattern is in the pipeline only when its options are given. Each policy stays
 * correct in any order; this module only picks the default.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option } from "effect"
import type { ConfigError } from "effect"
import type { RateLimiterStore } from "@effect/experimental/RateLimiter"
import * as Bulkhead from "./Bulkhead.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as Fallback from "./Fallback.js"
import * as Hedge from "./Hedge.js"
import * as Idempotency from "./Idempotency.js"
import { InvalidOptions, type Issue } from "./InvalidOptions.js"
import * as LlmClient from "./LlmClient.js"
import * as ModelTier from "./ModelTier.js"
import * as PromptTrim from "./PromptTrim.js"
import * as RateLimit from "./RateLimit.js"
import * as ResponseCache from "./ResponseCache.js"
import * as PipelineConfig from "./internal/pipelineConfig.js"
import { isDeterministic } from "./internal/requestKey.js"
import * as Retry from "./Retry.js"
import * as Router from "./Router.js"
import * as Timeout from "./Timeout.js"
import * as TokenBudget from "./TokenBudget.js"
import * as Tokenizer from "./Tokenizer.js"

/**
 * The options of every pattern the pipeline can hold; a pattern is included only when its options are given. A key
 * that is not one of these (a misspelt `retyr`) is a type error and, at run time, an `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { Pipeline } from "effect-llm-resilience"
 * const options: Pipeline.Options = {
 *   cache: { ttl: "1 hour" },
 *   budgets: [{ scope: "user", limit: { tokens: 100_000 }, period: "day" }],
 *   fallback: { models: ["gpt-4o", "gpt-4o-mini"] },
 *   retry: { maxRetries: 3 },
 *   breaker: { per: "model" },
 *   timeout: { attempt: "30 seconds" }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** Idempotency's options (`Idempotency.policy`). Needs an `IdempotencyStore`. */
  readonly idempotency?: Idempotency.Options | undefined
  /** ModelTier's options (`ModelTier.policy`). */
  readonly tier?: ModelTier.Options | undefined
  /** ResponseCache's options (`ResponseCache.policy`). Needs a `ResponseCacheStore`. */
  readonly cache?: ResponseCache.Options | undefined
  /** A list of budgets, outermost first (`TokenBudget.policy` each). Needs a `TokenBudgetStore`. */
  readonly budgets?: ReadonlyArray<TokenBudget.Options> | undefined
  /** PromptTrim's options (`PromptTrim.policy`). Counts with the `Tokenizer` in context (exact by default). */
  readonly trim?: PromptTrim.PolicyOptions | undefined
  /** Fallback's options (`Fallback.policy`). */
  readonly fallback?: Fallback.Options | undefined
  /** Retry's options (`Retry.policy`). */
  readonly retry?: Retry.Options | undefined
  /**
   * Hedge's options (`Hedge.policy`). Without a `budget` of its own it draws its hedges from `retry.budget` when
   * one is given (else from a `Retry.RetryBudget` in context).
   */
  readonly hedge?: Hedge.Options | undefined
  /** Router's options (`Router.policy`). Needs a `RouterStore`. */
  readonly router?: Router.Options | undefined
  /** CircuitBreaker's options (`CircuitBreaker.policy`). Needs a `CircuitBreakerStore`. */
  readonly breaker?: CircuitBreaker.PolicyOptions | undefined
  /** RateLimit's options (`RateLimit.policy`). Needs a `RateLimiterStore`. */
  readonly rateLimit?: RateLimit.Options | undefined
  /** Bulkhead's options (`Bulkhead.policy`). */
  readonly bulkhead?: Bulkhead.PolicyOptions | undefined
  /** Timeout's options (`Timeout.policy`). */
  readonly timeout?: Timeout.Options | undefined
}

/** True when `O` may hold options for `K` (a key typed `X | undefined`, or optional, counts: it may be given). */
type Given<O, K extends keyof Options> = K extends keyof O ? [Exclude<O[K], undefined>] extends [never] ? false : true
  : false

/**
 * The services (stores, Tokenizer) a pipeline with these options needs. A pattern whose key may be present (an
 * optional key of a wider type, such as `Pipeline.Options` itself) counts as present.
 *
 * @example
 * ```ts
 * import { Pipeline } from "effect-llm-resilience"
 * type R = Pipeline.Requirements<{ cache: {}; breaker: {} }> // ResponseCacheStore | CircuitBreakerStore
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Requirements<O extends Options> =
  | (Given<O, "cache"> extends true ? ResponseCache.ResponseCacheStore : never)
  | (Given<O, "idempotency"> extends true ? Idempotency.IdempotencyStore : never)
  | (Given<O, "budgets"> extends true ? TokenBudget.TokenBudgetStore : never)
  | (Given<O, "breaker"> extends true ? CircuitBreaker.CircuitBreakerStore : never)
  | (Given<O, "rateLimit"> extends true ? RateLimiterStore : never)
  | (Given<O, "router"> extends true ? Router.RouterStore : never)

/**
 * Options with no key beyond {@link Options}'s: a misspelt key is a type error.
 *
 * @example
 * ```ts
 * import { Pipeline } from "effect-llm-resilience"
 * const ok: Pipeline.Exact<{ retry: {} }> = { retry: {} }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Exact<O> = O & { readonly [K in Exclude<keyof O, keyof Options>]: never }

type Key = keyof Options

type Step = Effect.Effect<LlmClient.Policy, ReadonlyArray<Issue>, unknown>

/** One row of the pipeline's table: the policy it builds, from which option, and how. */
interface Row {
  readonly name: string
  readonly key: Key
  /** Only with a tier (the cache moves below it); such a row is not in {@link order}. */
  readonly withTier?: true
  /** The row's steps (none when its option is not given, or when the row does not apply). */
  readonly build: (options: Options) => ReadonlyArray<Step>
}

/**
 * THE ORDER, outermost first: one table, from which {@link order}, the documented order lines
 * ({@link orderLines}) and the built steps ({@link stepsOf}) all come.
 */
const table = [
  { name: "ResponseCache", key: "cache", build: (o) => (o.tier === undefined ? cacheStep(o) : []) },
  { name: "Idempotency", key: "idempotency", build: (o) => given(o.idempotency, (i) => stateful("idempotency", Idempotency.policy(i))) },
  { name: "ModelTier", key: "tier", build: (o) => given(o.tier, (t) => stateless("tier", () => ModelTier.policy(t))) },
  { name: "ResponseCache", key: "cache", withTier: true, build: (o) => (o.tier === undefined ? [] : cacheStep(o)) },
  {
    name: "TokenBudget",
    key: "budgets",
    build: (o) => (o.budgets ?? []).map((budget, i) => stateful(`budgets.${i}`, TokenBudget.policy(budget)))
  },
  { name: "PromptTrim", key: "trim", build: (o) => given(o.trim, (t) => stateful("trim", PromptTrim.policy(t))) },
  { name: "Fallback", key: "fallback", build: (o) => given(o.fallback, (f) => stateless("fallback", () => Fallback.policy(f))) },
  { name: "Retry", key: "retry", build: (o) => given(o.retry, (r) => stateless("retry", () => Retry.policy(r))) },
  {
    name: "Hedge",
    key: "hedge",
    // each hedge drawn from the retries' budget unless it has its own
    build: (o) =>
      given(o.hedge, (h) =>
        stateful("hedge", Hedge.policy(h.budget === undefined && o.retry?.budget !== undefined ? { ...h, budget: o.retry.budget } : h)))
  },
  { name: "Router", key: "router", build: (o) => given(o.router, (r) => stateful("router", Router.policy(r))) },
  { name: "CircuitBreaker", key: "breaker", build: (o) => given(o.breaker, (b) => stateful("breaker", CircuitBreaker.policy(b))) },
  { name: "RateLimit", key: "rateLimit", build: (o) => given(o.rateLimit, (r) => stateful("rateLimit", RateLimit.policy(r))) },
  { name: "Bulkhead", key: "bulkhead", build: (o) => given(o.bulkhead, (b) => stateful("bulkhead", Bulkhead.policy(b))) },
  { name: "Timeout", key: "timeout", build: (o) => given(o.timeout, (t) => stateless("timeout", () => Timeout.policy(t))) }
] as const satisfies ReadonlyArray<Row>

// Every option has a row: a key added to Options and not to the table fails to compile here.
const everyKeyHasARow: [Exclude<Key, (typeof table)[number]["key"]>] extends [never] ? true : never = true
void everyKeyHasARow

type Name = Exclude<(typeof table)[number], { readonly withTier: true }>["name"]

/**
 * The order of the pipeline without a tier, outermost first (the names of the policies it builds). With a `tier`,
 * the first three are `Idempotency`, `ModelTier`, `ResponseCache` (see the module's header).
 *
 * @example
 * ```ts
 * import { Pipeline } from "effect-llm-resilience"
 * Pipeline.order[0] // "ResponseCache"
 * ```
 * @since 0.1.0
 * @category Models
 */
export const order: ReadonlyArray<Name> = table.flatMap((row: Row) => ("withTier" in row ? [] : [row.name as Name]))

/**
 * The documented order as text, rendered from the same table: `withoutTier` (every step, then the provider) and
 * `withTier` (the steps down to the fallback when a tier is given). The docs and the module's header show these.
 *
 * @example
 * ```ts
 * import { Pipeline } from "effect-llm-resilience"
 * console.log(Pipeline.orderLines.withoutTier) // ResponseCache → Idempotency → … → Timeout → provider
 * ```
 * @since 0.1.0
 * @category Models
 */
export const orderLines: { readonly withoutTier: string; readonly withTier: string } = (() => {
  const label = (row: Row) => (row.key === "budgets" ? "TokenBudget(s)" : row.name)
  const rows: ReadonlyArray<Row> = table
  const withoutTier = rows.filter((row) => row.withTier !== true && row.key !== "tier")
  const withTier = rows.filter((row) => row.key !== "cache" || row.withTier === true)
  const upToFallback = withTier.slice(0, withTier.findIndex((row) => row.key === "fallback") + 1)
  return {
    withoutTier: [...withoutTier.map(label), "provider"].join(" → "),
    withTier: `${upToFallback.map(label).join(" → ")} → …`
  }
})()

/** Every option key, in table order. */
const keys: ReadonlyArray<Key> = [...new Set(table.map((row) => row.key))]

const given = <A>(value: A | undefined, step: (value: A) => Step): ReadonlyArray<Step> =>
  value === undefined ? [] : [step(value)]

/**
 * The cache step. Above idempotency, a request with an explicit idempotency key skips the cache: it gets the
 * outcome recorded for its key, never another call's cached answer. (An invalid `cacheable` is left as given, so
 * that ResponseCache reports it instead of calling it per request.) Without a tier the cache runs first (a hit costs
 * nothing, not even an idempotency claim); with a tier it runs below it: the cache keeps only answers from the
 * requested model, so above the tier a request for a placeholder model ("auto") would never be stored; and
 * idempotency stays above the tier, where an escalation does not change the payload recorded for its key.
 */
const cacheStep = (o: Options): ReadonlyArray<Step> => {
  const { cache, idempotency, tier } = o
  if (cache === undefined) return []
  const keyedSkipCache = idempotency !== undefined && tier === undefined &&
    (cache.cacheable === undefined || typeof cache.cacheable === "function")
  const options: ResponseCache.Options = !keyedSkipCache ? cache : {
    ...cache,
    cacheable: (request) => request.idempotencyKey === undefined && (cache.cacheable ?? isDeterministic)(request)
  }
  return [stateful("cache", ResponseCache.policy(options))]
}

const describe = (u: unknown): string => (u === null ? "null" : Array.isArray(u) ? "an array" : typeof u)

const isOptionsObject = (u: unknown): u is object => typeof u === "object" && u !== null && !Array.isArray(u)

/** What one Schema cannot say about the pipeline's own object: no unknown key, an object (or a list) per key. */
const shapeIssues = (options: unknown): ReadonlyArray<Issue> => {
  if (!isOptionsObject(options)) {
    return [{ path: "", message: `Expected an object of pattern options, actual ${describe(options)}` }]
  }
  const issues: Array<Issue> = []
  for (const [key, value] of Object.entries(options)) {
    if (!(keys as ReadonlyArray<string>).includes(key)) {
      issues.push({ path: key, message: `Unknown option; expected one of ${keys.join(", ")}` })
    } else if (value === undefined) {
      continue
    } else if (key === "budgets" ? !Array.isArray(value) : !isOptionsObject(value)) {
      const expected = key === "budgets" ? "a list of TokenBudget options" : "an options object"
      issues.push({ path: key, message: `Expected ${expected}, actual ${describe(value)}` })
    }
  }
  return issues
}

/** A pattern's issues, with paths relative to the pipeline's options (`retry.maxRetries`, `budgets.1.limit`). */
const under = (path: string, error: InvalidOptions): ReadonlyArray<Issue> =>
  error.issues.map((issue) => ({ path: issue.path === "" ? path : `${path}.${issue.path}`, message: issue.message }))

// Stateless constructors throw InvalidOptions at construction: turn that into the step's failure.
const stateless = (path: string, build: () => LlmClient.Policy): Step =>
  Effect.try({
    try: build,
    catch: (error) =>
      error instanceof InvalidOptions ? under(path, error) : [{ path, message: String(error) }]
  })

const stateful = (path: string, build: Effect.Effect<LlmClient.Policy, InvalidOptions, unknown>): Step =>
  Effect.mapError(build, (error) => under(path, error))

const stepsOf = (options: Options): ReadonlyArray<Step> => table.flatMap((row: Row) => row.build(options))

/** Every pattern's options are checked, so one InvalidOptions lists the failing paths of all of them. */
const build = (options: Options): Effect.Effect<ReadonlyArray<LlmClient.Policy>, InvalidOptions, unknown> =>
  Effect.suspend(() => {
    const shape = shapeIssues(options)
    const invalid = (issues: ReadonlyArray<Issue>) => new InvalidOptions({ target: "Pipeline", issues })
    if (!isOptionsObject(options)) return Effect.fail(invalid(shape))
    // A key whose value is not even an options object is left out: its issue is already in `shape`.
    const misshapen = new Set(shape.map((issue) => issue.path))
    const wellShaped = Object.fromEntries(Object.entries(options).filter(([key]) => !misshapen.has(key))) as Options
    return Effect.all(stepsOf(wellShaped), { mode: "validate" }).pipe(
      Effect.mapError((failures) => invalid([...shape, ...failures.flatMap((f) => Option.getOrElse(f, () => []))])),
      Effect.filterOrFail(() => shape.length === 0, () => invalid(shape))
    )
  })

/**
 * Builds the policies of a pipeline, outermost first, without installing them (to inspect them, or to pass them
 * to `LlmClient.decorate`). Fails with one `InvalidOptions` (target "Pipeline") listing every failing path of every
 * pattern, each under its key (`retry.maxRetries`, `budgets.1.limit`), and every unknown key.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Pipeline } from "effect-llm-resilience"
 * const policies = Pipeline.policies({ retry: { maxRetries: 2 }, timeout: { attempt: "10 seconds" } })
 * const names = Effect.map(policies, (ps) => ps.map((p) => p.name)) // ["Retry", "Timeout"]
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policies = <const O extends Options>(
  options: Exact<O>
): Effect.Effect<ReadonlyArray<LlmClient.Policy>, InvalidOptions, Requirements<O>> =>
  build(options) as Effect.Effect<ReadonlyArray<LlmClient.Policy>, InvalidOptions, Requirements<O>>

/**
 * A layer that decorates the `LlmClient` below it with the pipeline. The stores the chosen patterns need come from
 * the layer's context (memory or Redis: your choice); see {@link layerMemory} for an all-in-memory setup.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, Pipeline } from "effect-llm-resilience"
 * import * as OpenAi from "effect-llm-resilience/OpenAi"
 * const Live = Pipeline.layer({
 *   fallback: { models: ["gpt-4o", "gpt-4o-mini"] },
 *   retry: { maxRetries: 3 },
 *   breaker: { per: "model" },
 *   timeout: { attempt: "30 seconds" }
 * }).pipe(Layer.provide(OpenAi.layerConfig()), Layer.provide(CircuitBreaker.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = <const O extends Options>(
  options: Exact<O>
): Layer.Layer<LlmClient.LlmClient, InvalidOptions, LlmClient.LlmClient | Requirements<O>> =>
  Layer.effect(
    LlmClient.LlmClient,
    Effect.flatMap(LlmClient.LlmClient, (base) =>
      Effect.map(policies(options), (built) => LlmClient.decorate(base, ...built)))
  )

/**
 * Every store (and the exact Tokenizer) in memory: what {@link layerMemory} provides.
 *
 * @example
 * ```ts
 * import { Pipeline } from "effect-llm-resilience"
 * const stores = Pipeline.layerStoresMemory
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoresMemory: Layer.Layer<
  | ResponseCache.ResponseCacheStore
  | Idempotency.IdempotencyStore
  | TokenBudget.TokenBudgetStore
  | Tokenizer.Tokenizer
  | CircuitBreaker.CircuitBreakerStore
  | RateLimiterStore
  | Router.RouterStore
> = Layer.mergeAll(
  ResponseCache.layerStoreMemory,
  Idempotency.layerStoreMemory,
  TokenBudget.layerStoreMemory,
  Tokenizer.layer,
  CircuitBreaker.layerStoreMemory,
  RateLimit.layerStoreMemory,
  Router.layerStoreMemory
)

/**
 * {@link layer} with every store in memory (one process). Use {@link layer} with Redis stores to share state
 * across processes.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, Pipeline } from "effect-llm-resilience"
 * const Live = Pipeline.layerMemory({ cache: { ttl: "1 hour" }, retry: { maxRetries: 3 } }).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerMemory = <const O extends Options>(
  options: Exact<O>
): Layer.Layer<LlmClient.LlmClient, InvalidOptions, LlmClient.LlmClient> =>
  layer(options).pipe(Layer.provide(layerStoresMemory)) as Layer.Layer<
    LlmClient.LlmClient,
    InvalidOptions,
    LlmClient.LlmClient
  >

/**
 * Reads the pipeline's options from Effect `Config` and validates them: the environment by default, or any
 * `ConfigProvider` (a JSON or YAML file through `ConfigProvider.fromJson`). Names are the options' own, under
 * `prefix` (default `"pipeline"`; `""` for none): a file holds the options object itself (`{ "retry": { "maxRetries":
 * 3 } }`), the environment the same names in CONSTANT_CASE (`PIPELINE_RETRY_MAX_RETRIES=3`, lists comma-separated,
 * a list of objects such as `PIPELINE_BUDGETS` as one JSON text). Only data can be configured: options that are
 * functions (`cacheable`, `scope`, `classify`, …) are not read. A `retry.budget` is given as its options and made
 * into one budget shared by the pipeline's retries. Fails with one `InvalidOptions` (target "Pipeline") listing every
 * bad value, each at its option path (`retry.maxRetries`, `budgets.0.limit.tokens`).
 *
 * @example
 * ```ts
 * import { ConfigProvider, Effect } from "effect"
 * import { Pipeline } from "effect-llm-resilience"
 * const fromEnv = Pipeline.fromConfig() // PIPELINE_RETRY_MAX_RETRIES=3 PIPELINE_FALLBACK_MODELS=gpt-4o,gpt-4o-mini …
 * const fromFile = Pipeline.fromConfig("").pipe(
 *   Effect.withConfigProvider(ConfigProvider.fromJson({ retry: { maxRetries: 3 }, timeout: { attempt: "30 seconds" } }))
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const fromConfig = (prefix: string = "pipeline"): Effect.Effect<Options, InvalidOptions | ConfigError.ConfigError> =>
  PipelineConfig.withConstantCaseFallback(Effect.gen(function* () {
    const read = yield* PipelineConfig.options(prefix)
    const budgeted = yield* PipelineConfig.withRetryBudget(read.value ?? {}, (budget) =>
      Retry.makeBudget(budget as Retry.BudgetOptions))
    const options = budgeted.value as Options
    // The policies are built once over throwaway memory stores: every check of every pattern runs, as in `layer`.
    const checked = yield* Effect.either(Effect.provide(policies(options), layerStoresMemory))
    const issues = [...read.issues, ...budgeted.issues, ...(checked._tag === "Left" ? checked.left.issues : [])]
    if (issues.length > 0) return yield* Effect.fail(new InvalidOptions({ target: "Pipeline", issues }))
    return options
  }))

/**
 * {@link layerMemory} with the options read by {@link fromConfig} (every store in memory). To keep the state in
 * Redis, build {@link layer} from {@link fromConfig} and provide the Redis stores.
 *
 * @example
 * ```ts
 * import { ConfigProvider, Layer } from "effect"
 * import { FakeLlm, Pipeline } from "effect-llm-resilience"
 * const file = { retry: { maxRetries: 3 }, fallback: { models: ["gpt-4o", "gpt-4o-mini"] } }
 * const Live = Pipeline.layerConfig("").pipe(
 *   Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson(file))),
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  prefix?: string
): Layer.Layer<LlmClient.LlmClient, InvalidOptions | ConfigError.ConfigError, LlmClient.LlmClient> =>
  Layer.unwrapEffect(Effect.map(fromConfig(prefix), (options) => layerMemory(options)))
