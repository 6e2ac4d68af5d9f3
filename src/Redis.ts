/**
 * Redis backends for the stores that must be shared across processes (subpath `effect-llm-resilience/Redis`; the
 * core never loads `ioredis`).
 *
 * `RedisClient` holds one `ioredis` connection, a key prefix and a script runner; every store method is one atomic
 * step (one Lua script; for the breaker, a read and a compare-and-set script), `now` passed in from the Effect clock,
 * every key with a TTL, so N replicas share one breaker, one budget, one cache and one idempotency record per key.
 *
 * @since 0.1.0
 */
import type { RateLimiterStore } from "@effect/experimental/RateLimiter"
import { type ConfigError, type Duration, Layer } from "effect"
import type { Redis as IORedis } from "ioredis"
import type { CircuitBreakerStore } from "./CircuitBreaker.js"
import type { IdempotencyStore } from "./Idempotency.js"
import type { BatchJobStore } from "./internal/batchJobStore.js"
import * as BatchJobRedis from "./internal/redis/batchJob.js"
import * as CircuitBreakerRedis from "./internal/redis/circuitBreaker.js"
import type { KeyStore } from "./internal/gateway/keys.js"
import * as GatewayKeysRedis from "./internal/redis/gatewayKeys.js"
import * as internal from "./internal/redis/client.js"
import * as IdempotencyRedis from "./internal/redis/idempotency.js"
import * as RateLimitRedis from "./internal/redis/rateLimit.js"
import * as ResponseCacheRedis from "./internal/redis/responseCache.js"
import * as RouterRedis from "./internal/redis/router.js"
import * as TokenBudgetRedis from "./internal/redis/tokenBudget.js"
import type { InvalidOptions } from "./InvalidOptions.js"
import type { ResponseCacheStore } from "./ResponseCache.js"
import type { RouterStore } from "./Router.js"
import type { TokenBudgetStore } from "./TokenBudget.js"

/**
 * A Redis command failed (connection refused, timeout, script error). `reason` is the driver's message without the
 * connection URL (which may hold a password).
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const error = new Redis.RedisError({ operation: "EVALSHA", reason: "Connection is closed." })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export const RedisError: typeof internal.RedisError = internal.RedisError
export type RedisError = internal.RedisError

/**
 * A Lua script, loaded once per connection and run with EVALSHA (EVAL when the server does not know it yet).
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const incr = Redis.script(`return redis.call("INCRBY", KEYS[1], ARGV[1])`)
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Script = internal.Script

/**
 * Defines a Lua script.
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const get = Redis.script(`return redis.call("GET", KEYS[1])`)
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const script: (source: string) => Script = internal.script

/**
 * The service: the connection, the key prefix every store puts before its keys, and helpers that turn driver
 * promises into Effects failing with {@link RedisError}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const ping = Effect.flatMap(Redis.RedisClient, (redis) => redis.use("PING", (client) => client.ping()))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export const RedisClient: typeof internal.RedisClient = internal.RedisClient
export type RedisClient = internal.RedisClient

/**
 * Builds the service over an existing connection (you keep ownership of it).
 *
 * @example
 * ```ts
 * import { Redis as IORedis } from "ioredis"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const service = Redis.fromClient(new IORedis("redis://127.0.0.1:6379"), "llm:")
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const fromClient: (client: IORedis, prefix?: string) => RedisClient["Type"] = internal.fromClient

/**
 * Options of {@link layer}: any `ioredis` option, plus `url` and the key `prefix` (defaults to "llm:").
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const options: Redis.Options = { url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Options = internal.Options

/**
 * A layer holding one connection for its lifetime (closed with QUIT when the layer is released; closed at once if
 * the server does not answer the QUIT within a second). The connection is
 * checked with PING when the layer is built, so a missing server fails at start-up, not at the first call. While the
 * connection is down, commands fail with {@link RedisError} and the driver reconnects on its own; the outage is logged
 * once (`Effect.logWarning`, with the driver's reason, never the URL) until the connection is ready again.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Stores = Redis.layerCircuitBreakerStore.pipe(Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379" })))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer: (options?: Options) => Layer.Layer<RedisClient, RedisError> = internal.layer

/**
 * {@link layer} configured by `REDIS_URL` (redacted; defaults to `redis://127.0.0.1:6379`) and `REDIS_PREFIX`
 * (defaults to "llm:").
 *
 * @example
 * ```ts
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Client = Redis.layerConfig()
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig: () => Layer.Layer<RedisClient, RedisError | ConfigError.ConfigError> = internal.layerConfig

// ---------------------------------------------------------------------------------------------------------------
// RateLimiterStore

/**
 * The `RateLimiterStore` of `RateLimit.policy` in Redis, over the {@link RedisClient} in context (its connection and
 * key prefix), so a fleet shares one limit. The token-bucket and fixed-window algorithms of
 * `RateLimit.layerStoreMemory`, each method one Lua script, `now` passed in from the Effect clock. Keys are
 * `<prefix>ratelimit:<SHA-256 of the limiter key>` (no user id is written to Redis) and expire once the bucket would
 * have refilled completely (plus a minute's margin); a full bucket is deleted at once. A Redis failure is a
 * `RateLimitStoreError`, on which the policy lets the call through and logs a warning.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, RateLimit } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = LlmClient.layerWith(RateLimit.policy({ rpm: 500, tpm: 200_000 })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Redis.layerRateLimiterStore),
 *   Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerRateLimiterStore: Layer.Layer<RateLimiterStore, never, RedisClient> = RateLimitRedis.layer

// ---------------------------------------------------------------------------------------------------------------
// TokenBudgetStore

/**
 * The `TokenBudgetStore` of `TokenBudget.policy` in Redis, over the {@link RedisClient} in context, so every replica
 * reserves against one budget: `used + reserved` never exceeds a limit across processes. Each method (reserve,
 * commit, refund, usage) is one Lua script running the ledger of the memory store, with `now` and the window
 * passed in from the caller's Effect clock. Keys are `<prefix>budget:{<budget name>|<scope kind>|<digest of the
 * scope value>}` plus `:r`, `:l`, `:b`, `:f` (reservations, leases, rolling buckets, fired alerts); each expires 5
 * minutes after the last of its period end, newest bucket and last lease. A Redis failure is a defect: `reserve`
 * then fails the call (no provider call without a reservation); a failed commit/refund is logged by the policy and
 * the reservation holds budget until its lease ends. Amounts stay exact below 2^53 nano-USD (about $9 million).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, TokenBudget, Tokenizer } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = LlmClient.layerWith(TokenBudget.policy({ scope: "user", limit: { tokens: 200_000 }, period: "day" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Layer.merge(Redis.layerTokenBudgetStore, Tokenizer.layer)),
 *   Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerTokenBudgetStore: Layer.Layer<TokenBudgetStore, never, RedisClient> = TokenBudgetRedis.layer

/**
 * The `ResponseCacheStore` in Redis, bounded at `capacity` entries (an integer ≥ 1; defaults to 10,000) for every
 * process sharing the prefix: beyond it the least recently used entry (a hit counts as a use) is deleted. Each entry
 * is a hash `<prefix><key>` holding the response as JSON and its `expiresAt`; two sorted sets
 * (`<prefix>llm-cache-index:v1:lru` and `…:exp`) order entries by use and by expiry. Every method is one Lua script
 * with `now` from the Effect clock; an entry is gone at its `expiresAt` (Redis drops the key a minute later).
 * `clear` deletes only the entries in this store's index. A Redis failure never fails a call: a failed `get` is a
 * miss, a failed write is skipped, both logged as warnings. A bad or misspelt option throws `InvalidOptions`.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, ResponseCache } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = LlmClient.layerWith(ResponseCache.policy({ ttl: "1 hour" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Redis.layerResponseCacheStoreWith({ capacity: 50_000 })),
 *   Layer.provide(Redis.layerConfig())
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerResponseCacheStoreWith: (
  options: { readonly capacity?: number | undefined }
) => Layer.Layer<ResponseCacheStore, InvalidOptions, RedisClient> = ResponseCacheRedis.layer

/**
 * The `ResponseCacheStore` in Redis with the default capacity of 10,000 entries (see
 * {@link layerResponseCacheStoreWith}): processes sharing a prefix share every entry.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, ResponseCache } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = LlmClient.layerWith(ResponseCache.policy({ ttl: "1 hour" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Redis.layerResponseCacheStore),
 *   Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerResponseCacheStore: Layer.Layer<ResponseCacheStore, never, RedisClient> = ResponseCacheRedis.layerDefault

/**
 * The `IdempotencyStore` in Redis: one hash `<prefix><key>` per idempotency key (state, fingerprint, `expiresAt`, the
 * claim's owner token, and the encoded record once settled), kept by Redis a minute past its logical expiry. `claim`
 * is one Lua script, so of any number of processes exactly one claims a key; the others see it in flight (and poll,
 * with "wait") or settled. `complete` and `release` are one script each (compare the owner, then act), so a holder
 * whose lease expired never overwrites or erases the claim or record of the process that took the key over.
 * Fails closed: a Redis failure in `claim` or `get` is logged and becomes a defect, so the call fails instead of
 * running unguarded; a failed `complete` or `release` (after the call) is logged as a warning, the caller keeps its
 * outcome and the claim expires at its lease.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, Idempotency, LlmClient } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = LlmClient.layerWith(Idempotency.policy({ ttl: "24 hours" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Redis.layerIdempotencyStore),
 *   Layer.provide(Redis.layerConfig())
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerIdempotencyStore: Layer.Layer<IdempotencyStore, never, RedisClient> = IdempotencyRedis.layer

// ---------------------------------------------------------------------------------------------------------------
// CircuitBreakerStore

/**
 * The `CircuitBreakerStore` in Redis, over the {@link RedisClient} in context, so a fleet shares one breaker per
 * key: one process's break rejects in every process, and the fleet sends `halfOpenProbes` probes, not that many per
 * process. Each method runs the same pure state machine as `CircuitBreaker.layerStoreMemory` (`CircuitBreaker.decide`)
 * on the state it reads (one GET); a step that changes the state writes it with one Lua script that sets the key only
 * if it still holds what was read (an optimistic compare-and-set, retried on a conflict), over the client's connection.
 * A step that changes nothing is one GET. The state is one JSON string per key,
 * `<prefix>breaker:<SHA-256 of the breaker key>`, with a TTL of its break or probe deadline plus a day (30 days while
 * isolated). A Redis failure is a `CircuitBreakerStoreError`: guarded calls then fail open (they run untracked, with a
 * warning).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { CircuitBreaker, FakeLlm, LlmClient } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = LlmClient.layerWith(CircuitBreaker.policy({ per: "model" })).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Redis.layerCircuitBreakerStore),
 *   Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerCircuitBreakerStore: Layer.Layer<CircuitBreakerStore, never, RedisClient> = CircuitBreakerRedis.layer

/**
 * The `RouterStore` in Redis, over the {@link RedisClient} in context, so every replica routes on the same calls in
 * flight, minute counts, latency averages and cooldowns. Each step runs the memory store's own pure step and writes it
 * with one compare-and-set script; one key a deployment, `<prefix>router:<SHA-256 of the router key>` (no deployment
 * id in Redis), with a TTL of its cooldown plus one hour, refreshed on every write. A replica that dies mid-call leaves
 * its call counted in flight until the key goes idle for that hour.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmClient, Router } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = LlmClient.layerWith(
 *   Router.policy({ deployments: [{ id: "east", model: "gpt-4o" }, { id: "west", model: "gpt-4o" }] })
 * ).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Redis.layerRouterStore),
 *   Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerRouterStore: Layer.Layer<RouterStore, never, RedisClient> = RouterRedis.layer

// ---------------------------------------------------------------------------------------------------------------
// BatchJobStore

/**
 * The `BatchJobStore` in Redis, over the {@link RedisClient} in context, so a job submitted by one process is resumed
 * by any other (no second upload, no second batch). One JSON string per job key,
 * `<prefix>batch-job:<SHA-256 of the key>`, kept for `ttl` (defaults to 30 days, the life of the batch's files);
 * `claim` is one Lua script (set if absent, return what holds). A Redis failure is a defect: a job never submits
 * again because it could not read whether it had.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = BatchJob.layer({ apiKey: Redacted.make("sk-...") }).pipe(
 *   Layer.provide(Redis.layerBatchJobStore()),
 *   Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerBatchJobStore = (
  options: { readonly ttl?: Duration.DurationInput | undefined } = {}
): Layer.Layer<BatchJobStore, never, RedisClient> => BatchJobRedis.layer(options.ttl)

// ---------------------------------------------------------------------------------------------------------------
// Gateway KeyStore

/**
 * The gateway's virtual-key store in Redis, over the {@link RedisClient} in context, so every replica authenticates
 * against the same keys and a revocation reaches all of them. Three hashes in one slot,
 * `<prefix>{gateway-keys}:records` (SHA-256 of the secret → the record as JSON; no secret is stored), `:ids` (key id →
 * SHA-256) and `:revoked` (SHA-256 → revocation time). `put` is one Lua script that refuses an id or hash already
 * present (of any number of concurrent puts of one id exactly one wins), `revoke` and `get` one script each, `list`
 * one script answering every record oldest first. Unlike the other stores these keys have no TTL: they are
 * configuration, and an expired key is refused by its `expiresAt`. A Redis failure is a `KeyStoreError`, on which
 * authentication fails closed.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const KeyStoreLive = Redis.layerGatewayKeyStore.pipe(
 *   Layer.provide(Redis.layer({ url: "redis://127.0.0.1:6379", prefix: "myapp:llm:" }))
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerGatewayKeyStore: Layer.Layer<KeyStore, never, RedisClient> = GatewayKeysRedis.layer

// ---------------------------------------------------------------------------------------------------------------
// All stores

/**
 * Every store on Redis: breaker, budget, cache, idempotency and rate limits, over the `RedisClient` in context. With
 * `Pipeline.layer(options)` this shares a whole pipeline's state across processes.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, Pipeline, Tokenizer } from "effect-llm-resilience"
 * import * as Redis from "effect-llm-resilience/Redis"
 * const Live = Pipeline.layer({
 *   cache: { ttl: "1 hour" },
 *   budgets: [{ scope: "user", limit: { tokens: 100_000 }, period: "day" }],
 *   retry: { maxRetries: 3 },
 *   breaker: { per: "model" }
 * }).pipe(
 *   Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
 *   Layer.provide(Layer.merge(Redis.layerStores, Tokenizer.layer)),
 *   Layer.provide(Redis.layerConfig())
 * )
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStores: Layer.Layer<
  CircuitBreakerStore | TokenBudgetStore | ResponseCacheStore | IdempotencyStore | RateLimiterStore,
  never,
  RedisClient
> = Layer.mergeAll(
  layerCircuitBreakerStore,
  layerTokenBudgetStore,
  layerResponseCacheStore,
  layerIdempotencyStore,
  layerRateLimiterStore
)
