/**
 * A response cache that is tenant-safe by construction: every key is the scope (the request's `user`, or an explicit
 * anonymous scope) plus a SHA-256 of every output-affecting request field. Concurrent identical requests share one
 * upstream call. Only deterministic requests are cached by default (temperature 0 or a seed), never an error or a cut
 * stream; an answer a fallback model gave for another model's request is kept only briefly (1 minute by default).
 *
 * ```ts
 * const Live = LlmClient.layerWith(ResponseCache.policy({ ttl: "1 hour", capacity: 1000 })).pipe(
 *   Layer.provide(OpenAi.layerConfig()),
 *   Layer.provide(ResponseCache.layerStoreMemory)
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Schema } from "effect"
import * as internal from "./internal/responseCache.js"
import { defaultScope, isDeterministic, requestHash, scopedKey } from "./internal/requestKey.js"
import { FiniteDuration, strict } from "./internal/optionSchemas.js"
import { decode, type InvalidOptions } from "./InvalidOptions.js"
import type { ChatRequest, ChatResponse } from "./Llm.js"
import type { Policy } from "./LlmClient.js"

/**
 * Options of {@link policy}.
 *
 * @example
 * ```ts
 * import { ResponseCache } from "effect-llm-resilience"
 * const options: ResponseCache.Options = {
 *   ttl: "10 minutes",
 *   capacity: 5000,
 *   scope: (request) => request.metadata?.team ?? "anonymous"
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** How long an entry lives, on the Effect clock (positive and finite). Defaults to "1 hour". */
  readonly ttl?: Duration.DurationInput | undefined
  /**
   * The most entries this policy keeps; beyond it the least recently used entry it wrote is deleted from the store.
   * Defaults to 1000.
   */
  readonly capacity?: number | undefined
  /**
   * Names the tenant of a request; it is hashed into every key. Defaults to `user:<request.user>`, or
   * `"anonymous"` (a scope of its own) when the request has no `user`. Return a constant to share a cache across
   * users on purpose.
   */
  readonly scope?: ((request: ChatRequest) => string) | undefined
  /** Which requests are cached. Defaults to deterministic ones: `temperature === 0` or a `seed` set. */
  readonly cacheable?: ((request: ChatRequest) => boolean) | undefined
  /**
   * Answers another model gave for the request (a fallback answered while the requested model failed): stored under
   * the requested model's key for a short while, so the duplicates of an outage are served from the cache, and the
   * requested model answers again soon after it is back. A hit says which model answered (`model`). `{ ttl }` sets
   * that lifetime (never longer than `ttl`), `true` stores them for the full `ttl`, `false` never stores them.
   * Defaults to `{ ttl: "1 minute" }`. A dated snapshot of the requested model (`gpt-4o` → `gpt-4o-2024-08-06`) is the
   * same model, stored for the full `ttl`.
   */
  readonly cacheFallbackAnswers?: boolean | { readonly ttl: Duration.DurationInput } | undefined
}

const isFunction = <F>(name: string) =>
  Schema.declare((u: unknown): u is F => typeof u === "function", { identifier: name, description: "a function" })

const PositiveFiniteDuration = FiniteDuration.pipe(
  Schema.filter((d) => Duration.greaterThan(d, Duration.zero) || "Expected a positive, finite duration")
)
const Capacity = Schema.Int.pipe(Schema.greaterThanOrEqualTo(1))
const defaultFallbackTtl = Duration.minutes(1)

const OptionsSchema = Schema.Struct({
  ttl: Schema.optionalWith(PositiveFiniteDuration, { default: () => Duration.hours(1) }),
  capacity: Schema.optionalWith(Capacity, { default: () => 1000 }),
  scope: Schema.optional(isFunction<(request: ChatRequest) => string>("ScopeFunction")),
  cacheable: Schema.optional(isFunction<(request: ChatRequest) => boolean>("CacheableFunction")),
  cacheFallbackAnswers: Schema.optionalWith(
    Schema.Union(
      Schema.Boolean,
      Schema.Struct({ ttl: PositiveFiniteDuration }).annotations({ ...strict, identifier: "{ ttl: a positive duration }" })
    ),
    { default: () => ({ ttl: defaultFallbackTtl }) }
  )
}).annotations(strict)

/** The lifetime of a fallback's answer under the requested model's key, or undefined when it is not stored. */
const fallbackTtlOf = (ttl: Duration.Duration, option: boolean | { readonly ttl: Duration.Duration }) =>
  option === false ? undefined : option === true ? ttl : Duration.min(ttl, option.ttl)

const StoreOptionsSchema = Schema.Struct({
  capacity: Schema.optionalWith(Capacity, { default: () => internal.DEFAULT_CAPACITY })
}).annotations(strict)

/**
 * Counters of one cache: `hits` (including concurrent duplicates that shared a call), `misses` (upstream calls),
 * `size` (live entries in the store) and `inFlight` (upstream calls running now).
 *
 * @example
 * ```ts
 * import { ResponseCache } from "effect-llm-resilience"
 * const rate = (s: ResponseCache.Stats) => s.hits / Math.max(1, s.hits + s.misses)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Stats {
  readonly hits: number
  readonly misses: number
  readonly size: number
  readonly inFlight: number
}

/**
 * A built cache: a {@link Policy} for `LlmClient.layerWith`, plus its key function, invalidation and stats.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResponseCache } from "effect-llm-resilience"
 * const program = Effect.gen(function* () {
 *   const cache = yield* ResponseCache.policy({ ttl: "5 minutes" })
 *   return yield* cache.stats
 * }).pipe(Effect.provide(ResponseCache.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Service extends Policy {
  /** The store key of a request under this cache's scope function. */
  readonly keyOf: (request: ChatRequest) => string
  /** Deletes the entry of a request (or of a key from {@link keyOf}). */
  readonly invalidate: (target: ChatRequest | string) => Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/**
 * The response cache service, for programs that invalidate entries or read stats. Build it with {@link layer}; the
 * service is itself the policy, so `LlmClient.layerWith(ResponseCache.current)` installs it.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResponseCache } from "effect-llm-resilience"
 * const hits = Effect.map(ResponseCache.ResponseCache, (cache) => cache.stats)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class ResponseCache extends Context.Tag("effect-llm-resilience/ResponseCache")<ResponseCache, Service>() {}

/**
 * What a store holds for one entry: a `ChatResponse` encoded by its Schema (plain JSON, so a shared store can
 * serialize it).
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { Llm, ResponseCache } from "effect-llm-resilience"
 * declare const response: Llm.ChatResponse
 * const stored: ResponseCache.StoredResponse = Schema.encodeSync(Llm.ChatResponse)(response)
 * ```
 * @since 0.1.0
 * @category Models
 */
export type StoredResponse = typeof ChatResponse.Encoded

/**
 * The narrow contract a response cache store implements. Times are epoch milliseconds from the Effect clock,
 * passed in so a shared store (Redis) uses the caller's clock.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResponseCache } from "effect-llm-resilience"
 * const sizeNow = Effect.flatMap(ResponseCache.ResponseCacheStore, (store) => store.size(Date.UTC(2025, 0, 1)))
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Store extends internal.Store {}

/**
 * The store Tag the cache policy requires: provide {@link layerStoreMemory}, or a shared (Redis) store.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResponseCache } from "effect-llm-resilience"
 * const clearAll = Effect.flatMap(ResponseCache.ResponseCacheStore, (store) => store.clear)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class ResponseCacheStore extends Context.Tag("effect-llm-resilience/ResponseCacheStore")<
  ResponseCacheStore,
  Store
>() {}

/**
 * A fresh in-memory store: a Map kept in least-recently-used order, entries expire at their `expiresAt`.
 * `capacity` (an integer ≥ 1) defaults to 10,000; a bad or misspelt option fails the Effect with `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResponseCache } from "effect-llm-resilience"
 * const program = Effect.flatMap(ResponseCache.makeStoreMemory({ capacity: 100 }), (store) => store.size(0))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const makeStoreMemory = (
  options?: { readonly capacity?: number | undefined }
): Effect.Effect<Store, InvalidOptions> =>
  Effect.map(decode(StoreOptionsSchema, "ResponseCache.makeStoreMemory", options ?? {}), ({ capacity }) =>
    internal.makeMemoryStore(capacity))

/**
 * The in-memory store as a layer (one store per layer build) with the default capacity of 10,000 entries (least
 * recently used evicted first). Use {@link layerStoreMemoryWith} for another capacity.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, ResponseCache } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(ResponseCache.policy({ ttl: "1 hour" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(ResponseCache.layerStoreMemory)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemory: Layer.Layer<ResponseCacheStore> = Layer.sync(
  ResponseCacheStore,
  () => internal.makeMemoryStore(internal.DEFAULT_CAPACITY)
)

/**
 * The in-memory store as a layer with a given `capacity` (bounds the store as a whole; least recently used evicted
 * first). Fails with `InvalidOptions` for a capacity that is not a positive integer.
 *
 * @example
 * ```ts
 * import { ResponseCache } from "effect-llm-resilience"
 * const stores = ResponseCache.layerStoreMemoryWith({ capacity: 50_000 })
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemoryWith = (
  options: { readonly capacity?: number | undefined }
): Layer.Layer<ResponseCacheStore, InvalidOptions> =>
  Layer.effect(ResponseCacheStore, makeStoreMemory(options))

/**
 * The cache key of a request: `llm-cache:v1:<scope hash>:<request hash>`. It holds neither prompt text nor a
 * user id in clear. `scope` defaults as in {@link Options}.
 *
 * @example
 * ```ts
 * import { Llm, ResponseCache } from "effect-llm-resilience"
 * const request = new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], user: "u1" })
 * ResponseCache.keyOf(request) // "llm-cache:v1:3f…:9a…"
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const keyOf = (
  request: ChatRequest,
  options?: { readonly scope?: ((request: ChatRequest) => string) | undefined }
): string => scopedKey(internal.NAMESPACE, (options?.scope ?? defaultScope)(request), requestHash(request))

/**
 * Builds a cache over the `ResponseCacheStore` in context. Fails with `InvalidOptions` listing every bad option.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResponseCache } from "effect-llm-resilience"
 * const cache = ResponseCache.make({ ttl: "1 hour" }).pipe(Effect.provide(ResponseCache.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options = {}): Effect.Effect<Service, InvalidOptions, ResponseCacheStore> =>
  Effect.gen(function* () {
    const decoded = yield* decode(OptionsSchema, "ResponseCache", options)
    const store = yield* ResponseCacheStore
    const engine = internal.make(store, {
      ttl: decoded.ttl,
      capacity: decoded.capacity,
      scope: decoded.scope ?? defaultScope,
      cacheable: decoded.cacheable ?? isDeterministic,
      fallbackTtl: fallbackTtlOf(decoded.ttl, decoded.cacheFallbackAnswers)
    })
    return {
      name: "ResponseCache",
      complete: engine.complete,
      stream: engine.stream,
      keyOf: engine.keyOf,
      invalidate: engine.invalidate,
      stats: engine.stats
    }
  })

/**
 * The cache as an LLM policy: a hit answers with `servedFrom: "cache"` and no provider call; concurrent identical
 * requests share one upstream call; a stream miss streams through and is stored once it finished, a stream hit
 * replays the text as chunks. Requires `ResponseCacheStore`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, ResponseCache } from "effect-llm-resilience"
 * const Live = LlmClient.layerWith(ResponseCache.policy({ ttl: "1 hour", capacity: 1000 })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("cached answer"))),
 *   Layer.provide(ResponseCache.layerStoreMemory)
 * )
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const policy: (options?: Options) => Effect.Effect<Service, InvalidOptions, ResponseCacheStore> = make

/**
 * The cache as a service layer, so the program can invalidate entries and read stats; install its policy with
 * `LlmClient.layerWith(ResponseCache.current)`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, ResponseCache } from "effect-llm-resilience"
 * const Cache = ResponseCache.layer({ ttl: "1 hour" }).pipe(Layer.provide(ResponseCache.layerStoreMemory))
 * const Live = LlmClient.layerWith(ResponseCache.current).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provideMerge(Cache)
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options = {}): Layer.Layer<ResponseCache, InvalidOptions, ResponseCacheStore> =>
  Layer.effect(ResponseCache, make(options))

/**
 * The `ResponseCache` service in context, usable as a policy input of `LlmClient.layerWith`.
 *
 * @example
 * ```ts
 * import { LlmClient, ResponseCache } from "effect-llm-resilience"
 * const decorated = LlmClient.layerWith(ResponseCache.current)
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const current: Effect.Effect<Service, never, ResponseCache> = ResponseCache

/**
 * Deletes the cached answer of a request (under the service's scope function) or of a key.
 *
 * @example
 * ```ts
 * import { Llm, ResponseCache } from "effect-llm-resilience"
 * declare const request: Llm.ChatRequest
 * const forget = ResponseCache.invalidate(request)
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const invalidate = (target: ChatRequest | string): Effect.Effect<void, never, ResponseCache> =>
  Effect.flatMap(ResponseCache, (cache) => cache.invalidate(target))

/**
 * The service's hits, misses, live entries and in-flight upstream calls.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { ResponseCache } from "effect-llm-resilience"
 * const log = Effect.flatMap(ResponseCache.stats, (s) => Effect.log(`hits=${s.hits} misses=${s.misses}`))
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const stats: Effect.Effect<Stats, never, ResponseCache> = Effect.flatMap(ResponseCache, (cache) => cache.stats)
