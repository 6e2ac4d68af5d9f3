/**
 * One documented default order of every policy, built from one options object.
 *
 * ```
 * cache → idempotency → tier → budgets → trim → fallback → retry → breaker → rate limit → bulkhead → timeout → provider
 * ```
 *
 * Why this order: a cache hit costs nothing, so it is checked first; an idempotent replay happens before any
 * budget is spent; the tier picks the model before budgets price the call (so they reserve at the real model's
 * price and charge every escalated call) and before trimming (so the prompt fits the chosen model's window);
 * budgets reserve before the prompt is trimmed (on a long prompt the reservation over-estimates,
 * and the difference is released when the actual usage is committed); the fallback chain wraps retries, so
 * each model is retried before the next one takes over; the breaker sits inside retry and fallback, so an open
 * breaker fails at once and the fallback moves on; the rate limit and bulkhead guard each provider call; the
 * timeout bounds each attempt (put a `total` deadline around the whole pipeline with `Timeout.policy({ total })`
 * as an extra outer policy if you need one).
 *
 * Every option is optional: a pattern is in the pipeline only when its options are given. Each policy stays
 * correct in any order; this module only picks the default.
 *
 * @since 0.1.0
 */
import { Effect, Layer } from "effect"
import type { RateLimiterStore } from "@effect/experimental/RateLimiter"
import * as Bulkhead from "./Bulkhead.js"
import * as CircuitBreaker from "./CircuitBreaker.js"
import * as Fallback from "./Fallback.js"
import * as Idempotency from "./Idempotency.js"
import { InvalidOptions } from "./InvalidOptions.js"
import * as LlmClient from "./LlmClient.js"
import * as ModelTier from "./ModelTier.js"
import * as PromptTrim from "./PromptTrim.js"
import * as RateLimit from "./RateLimit.js"
import * as ResponseCache from "./ResponseCache.js"
import * as Retry from "./Retry.js"
import * as Timeout from "./Timeout.js"
import * as TokenBudget from "./TokenBudget.js"
import * as Tokenizer from "./Tokenizer.js"

/**
 * The options of every pattern the pipeline can hold; a pattern is included only when its options are given.
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
  readonly cache?: ResponseCache.Options | undefined
  readonly idempotency?: Idempotency.Options | undefined
  readonly tier?: ModelTier.Options | undefined
  readonly budgets?: ReadonlyArray<TokenBudget.Options> | undefined
  readonly trim?: PromptTrim.PolicyOptions | undefined
  readonly fallback?: Fallback.Options | undefined
  readonly retry?: Retry.Options | undefined
  readonly breaker?: CircuitBreaker.PolicyOptions | undefined
  readonly rateLimit?: RateLimit.Options | undefined
  readonly bulkhead?: Bulkhead.PolicyOptions | undefined
  readonly timeout?: Timeout.Options | undefined
}

/**
 * The services (stores, Tokenizer) a pipeline with these options needs.
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
  | (O extends { readonly cache: object } ? ResponseCache.ResponseCacheStore : never)
  | (O extends { readonly idempotency: object } ? Idempotency.IdempotencyStore : never)
  | (O extends { readonly budgets: ReadonlyArray<unknown> } ? TokenBudget.TokenBudgetStore | Tokenizer.Tokenizer
    : never)
  | (O extends { readonly trim: object } ? Tokenizer.Tokenizer : never)
  | (O extends { readonly breaker: object } ? CircuitBreaker.CircuitBreakerStore : never)
  | (O extends { readonly rateLimit: object } ? RateLimiterStore : never)

/**
 * The order of the pipeline, outermost first (the names of the policies it builds).
 *
 * @example
 * ```ts
 * import { Pipeline } from "effect-llm-resilience"
 * Pipeline.order[0] // "ResponseCache"
 * ```
 * @since 0.1.0
 * @category Models
 */
export const order = [
  "ResponseCache",
  "Idempotency",
  "ModelTier",
  "TokenBudget",
  "PromptTrim",
  "Fallback",
  "Retry",
  "CircuitBreaker",
  "RateLimit",
  "Bulkhead",
  "Timeout"
] as const

// Stateless constructors throw InvalidOptions at construction: turn that into the Effect's failure.
const stateless = (build: () => LlmClient.Policy): Effect.Effect<LlmClient.Policy, InvalidOptions> =>
  Effect.try({
    try: build,
    catch: (error) =>
      error instanceof InvalidOptions
        ? error
        : new InvalidOptions({ target: "Pipeline", issues: [{ path: "", message: String(error) }] })
  })

type Step = Effect.Effect<LlmClient.Policy, InvalidOptions, unknown>

/**
 * Builds the policies of a pipeline, outermost first, without installing them (to inspect them, or to pass them
 * to `LlmClient.decorate`).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Pipeline } from "effect-llm-resilience"
 * const policies = Pipeline.policies({ retry: { maxRetries: 2 }, timeout: { attempt: "10 seconds" } })
 * const names = Effect.map(policies, (ps) => ps.map((p) => p.name)) // ["retry", "timeout"]
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policies = <const O extends Options>(
  options: O
): Effect.Effect<ReadonlyArray<LlmClient.Policy>, InvalidOptions, Requirements<O>> => {
  const steps: Array<Step> = []
  if (options.cache !== undefined) steps.push(ResponseCache.policy(options.cache))
  if (options.idempotency !== undefined) steps.push(Idempotency.policy(options.idempotency))
  const tier = options.tier
  if (tier !== undefined) steps.push(stateless(() => ModelTier.policy(tier)))
  for (const budget of options.budgets ?? []) steps.push(TokenBudget.policy(budget))
  if (options.trim !== undefined) steps.push(PromptTrim.policy(options.trim))
  const fallback = options.fallback
  if (fallback !== undefined) steps.push(stateless(() => Fallback.policy(fallback)))
  const retry = options.retry
  if (retry !== undefined) steps.push(stateless(() => Retry.policy(retry)))
  if (options.breaker !== undefined) steps.push(CircuitBreaker.policy(options.breaker))
  if (options.rateLimit !== undefined) steps.push(RateLimit.policy(options.rateLimit))
  if (options.bulkhead !== undefined) steps.push(Bulkhead.policy(options.bulkhead))
  const timeout = options.timeout
  if (timeout !== undefined) steps.push(stateless(() => Timeout.policy(timeout)))
  return Effect.all(steps) as Effect.Effect<ReadonlyArray<LlmClient.Policy>, InvalidOptions, Requirements<O>>
}

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
  options: O
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
> = Layer.mergeAll(
  ResponseCache.layerStoreMemory,
  Idempotency.layerStoreMemory,
  TokenBudget.layerStoreMemory,
  Tokenizer.layer,
  CircuitBreaker.layerStoreMemory,
  RateLimit.layerStoreMemory
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
  options: O
): Layer.Layer<LlmClient.LlmClient, InvalidOptions, LlmClient.LlmClient> =>
  layer(options).pipe(Layer.provide(layerStoresMemory)) as Layer.Layer<
    LlmClient.LlmClient,
    InvalidOptions,
    LlmClient.LlmClient
  >
