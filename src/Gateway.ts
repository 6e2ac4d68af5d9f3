/**
 * An OpenAI-compatible HTTP gateway (subpath `effect-llm-resilience/Gateway`): any client, in any language, that
 * speaks OpenAI's Chat Completions gets the library's policies (cache, idempotency, budgets, fallback, retry,
 * router, breaker, rate limit, timeout, …) by pointing its `baseURL` at the gateway and using a virtual key.
 *
 * - `POST /v1/chat/completions`: JSON, or server-sent events with `stream: true` (a role delta, content deltas, a
 *   chunk with the finish reason, a usage chunk with `stream_options.include_usage`, then `data: [DONE]`).
 * - `POST /v1/embeddings`: each embedding model over its deployments in order, behind the key's limits.
 * - `GET /v1/models` (the gateway's model names the key may call), `GET /healthz`, `GET /metrics` (Prometheus text
 *   of every metric the library records).
 *
 * Each request is authenticated by its bearer key (401 for a missing or unknown key, 403 for a revoked or expired
 * one, or a model the key may not call). Its `user` is scoped by the key's tenant, so cache, idempotency and budget
 * keys never cross tenants; the `Idempotency-Key` header becomes the request's `idempotencyKey` and every
 * `x-llm-metadata-<name>` header its `metadata.<name>` (`x-llm-metadata-tier` picks a `ModelTier`). A key's budgets
 * and rate limit run after the route's cache and idempotency steps (a replay costs nothing), named after the key's
 * id, so every replica shares their state. Failures are OpenAI error bodies with the status OpenAI would use (429
 * with Retry-After for a rate limit or a spent budget, 503 for an open breaker, 502 when an upstream fails or
 * refuses the gateway's own credentials). Answers carry `x-llm-model`, `x-llm-deployment`, `x-llm-served-from`,
 * `x-llm-cost-usd` and `x-llm-cache`. Upstream keys never leave the gateway; no prompt or completion text is logged.
 *
 * With `redis` every store (budgets, rate limits, breakers, router, cache, idempotency, keys) is in Redis, so N
 * replicas behind a load balancer act as one; without it everything is in this process.
 *
 * @since 0.1.0
 */
import type { HttpServerError } from "@effect/platform"
import { Context, Effect, Layer, type Scope } from "effect"
import type { InvalidOptions } from "./InvalidOptions.js"
import * as internalConfig from "./internal/gateway/config.js"
import * as Keys from "./internal/gateway/keys.js"
import * as internal from "./internal/gateway/start.js"
import type { RedisError } from "./Redis.js"

/**
 * One OpenAI-compatible upstream: its API root and its key, as `apiKey` (a `Redacted`, in code) or `apiKeyEnv`
 * (the environment variable that holds it, in a JSON file). The key is sent to that upstream only.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import type * as Gateway from "effect-llm-resilience/Gateway"
 * const inCode: Gateway.Upstream = { baseURL: "https://api.openai.com/v1", apiKey: Redacted.make("sk-...") }
 * const inAFile: Gateway.Upstream = { baseURL: "https://api.openai.com/v1", apiKeyEnv: "OPENAI_API_KEY" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Upstream = internalConfig.Upstream

/**
 * One deployment of a gateway model: a unique `id` (the `x-llm-deployment` header, router state and metric
 * labels), the `upstream` it runs on and the `model` name it is called with there.
 *
 * @example
 * ```ts
 * import type * as Gateway from "effect-llm-resilience/Gateway"
 * const east: Gateway.Deployment = { id: "openai-east", upstream: "openai", model: "gpt-4o-mini" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Deployment = internalConfig.Deployment

/**
 * One gateway model: its deployments (routed by `strategy`, default "weighted"; see `Router`) and its own
 * `pipeline` (`Pipeline.Options` without `router`: the gateway routes), which replaces the default pipeline.
 *
 * @example
 * ```ts
 * import type * as Gateway from "effect-llm-resilience/Gateway"
 * const route: Gateway.Route = {
 *   deployments: [{ id: "a", upstream: "openai", model: "gpt-4o-mini" }, { id: "b", upstream: "azure", model: "gpt-4o-mini" }],
 *   strategy: "least-busy",
 *   pipeline: { retry: { maxRetries: 2 }, timeout: { attempt: "20 seconds" } }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Route = internalConfig.Route

/**
 * One embedding model of `POST /v1/embeddings`: its deployments, tried in order (the next one takes over after an
 * error another deployment may not have: a 5xx, a 429, a timeout, a refused key). A key's budgets and rate limit
 * apply to embeddings under the same names as to its chat calls, so one budget covers both.
 *
 * @example
 * ```ts
 * import type * as Gateway from "effect-llm-resilience/Gateway"
 * const small: Gateway.EmbeddingRoute = { deployments: [{ id: "openai-small", upstream: "openai", model: "text-embedding-3-small" }] }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type EmbeddingRoute = internalConfig.EmbeddingRoute

/**
 * The gateway's configuration. `host` defaults to "127.0.0.1" (expose it deliberately) and `port` to 0 (any free
 * port). `models` maps each gateway model name to its route; `pipeline` is the default pipeline of every route
 * without its own; `embeddings` maps each embedding model name to its deployments (tried in order). `redis` (`{ url, prefix }`, prefix default "llm:") keeps every store in Redis, shared by every
 * replica; absent, they are in memory. Keys come from `keys` (records, one process), `keysFile` (the key file the
 * `gateway keys` command writes), the Redis key store when `redis` is given, or a `KeyStore` in context.
 * `shutdown.grace` (default 10 seconds) is how long requests in flight may take when the gateway stops;
 * `maxClients` (default 1000) bounds the (key, model) clients kept built.
 *
 * @example
 * ```ts
 * import type * as Gateway from "effect-llm-resilience/Gateway"
 * const config: Gateway.Config = {
 *   port: 8080,
 *   upstreams: { openai: { baseURL: "https://api.openai.com/v1", apiKeyEnv: "OPENAI_API_KEY" } },
 *   models: { "gpt-4o-mini": { deployments: [{ id: "openai-mini", upstream: "openai", model: "gpt-4o-mini" }] } },
 *   pipeline: { cache: { ttl: "1 hour" }, retry: { maxRetries: 2 }, breaker: { per: "model" } },
 *   redis: { url: "redis://127.0.0.1:6379", prefix: "gw:" },
 *   shutdown: { grace: "15 seconds" }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Config = internalConfig.Config

/**
 * A virtual key's record: its public `id` (`key_…`), its `tenant`, the SHA-256 `hash` of its secret (never the
 * secret), `createdAt`, and optionally `models` it may call, `budgets`, a `rateLimit` (`{ rpm, tpm }`), `expiresAt`
 * and `revokedAt` (epoch milliseconds).
 *
 * @example
 * ```ts
 * import * as Gateway from "effect-llm-resilience/Gateway"
 * const intern: Gateway.KeyRecord = {
 *   id: "key_intern",
 *   tenant: "support",
 *   hash: Gateway.hashSecret("sk-gw-intern-secret"),
 *   createdAt: Date.now(),
 *   models: ["gpt-4o-mini"],
 *   budgets: [{ usd: 5, period: "day" }],
 *   rateLimit: { rpm: 60 }
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export type KeyRecord = Keys.KeyRecord

/**
 * The SHA-256 hex of a key's secret, as a {@link KeyRecord} holds it.
 *
 * @example
 * ```ts
 * import * as Gateway from "effect-llm-resilience/Gateway"
 * const hash = Gateway.hashSecret("sk-gw-example") // 64 hex digits
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const hashSecret: (secret: string) => string = Keys.hashSecret

/**
 * Where the gateway looks keys up. Provide one in context to use a store of your own; otherwise the gateway uses
 * its configuration's `keys`, `keysFile` or (with `redis`) the Redis key store.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import * as Gateway from "effect-llm-resilience/Gateway"
 * const none = Gateway.KeyStore.of({
 *   get: () => Effect.succeed(Option.none()),
 *   put: () => Effect.succeed(false),
 *   list: Effect.succeed([]),
 *   revoke: () => Effect.succeed(false)
 * })
 * ```
 * @since 0.1.0
 * @category Tags
 */
export const KeyStore: typeof Keys.KeyStore = Keys.KeyStore

/**
 * @since 0.1.0
 * @category Tags
 */
export type KeyStore = Keys.KeyStore

/**
 * A running gateway: `url` (`http://host:port`), `baseURL` (`url` + "/v1", for OpenAI clients) and `port`.
 *
 * @example
 * ```ts
 * import type * as Gateway from "effect-llm-resilience/Gateway"
 * const clientOptions = (gateway: Gateway.Service) => ({ baseURL: gateway.baseURL, apiKey: "sk-gw-..." })
 * ```
 * @since 0.1.0
 * @category Models
 */
export type Service = internal.Running

/**
 * The running gateway provided by {@link layer}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Gateway from "effect-llm-resilience/Gateway"
 * const address = Effect.map(Gateway.Gateway, (gateway) => gateway.baseURL)
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class Gateway extends Context.Tag("effect-llm-resilience/Gateway")<Gateway, Service>() {}

/**
 * Starts a gateway for the life of the scope. Fails with `InvalidOptions` (target "Gateway") listing every bad path
 * of the configuration at once: each field, a deployment's unknown upstream, a deployment id used twice, an unset
 * `apiKeyEnv`, and every pattern option of every pipeline (`models.gpt-4o.pipeline.retry.maxRetries`). Closing the
 * scope drains it: new requests get 503, requests and streams in flight get `shutdown.grace` to finish and are then
 * interrupted (their budget reservations refunded).
 *
 * Two replicas sharing state are two calls with the same `redis` and different ports (in two processes, or one).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Gateway from "effect-llm-resilience/Gateway"
 * declare const config: Gateway.Config
 * const program = Effect.scoped(Effect.gen(function* () {
 *   const gateway = yield* Gateway.make(config)
 *   yield* Effect.log(`OpenAI-compatible gateway on ${gateway.baseURL}`)
 *   return yield* Effect.never
 * }))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (
  config: Config
): Effect.Effect<Service, InvalidOptions | HttpServerError.ServeError | RedisError, Scope.Scope> =>
  Effect.flatMap(internalConfig.resolve(config), internal.start)

/**
 * {@link make} as a layer providing {@link Gateway}: the gateway runs while the layer is alive.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import * as Gateway from "effect-llm-resilience/Gateway"
 * declare const config: Gateway.Config
 * const main = Layer.launch(Gateway.layer(config))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (config: Config): Layer.Layer<Gateway, InvalidOptions | HttpServerError.ServeError | RedisError> =>
  Layer.scoped(Gateway, make(config))

/**
 * Reads a configuration from JSON (the `gateway --config gateway.json` file): the same shape as {@link Config},
 * with each upstream's key named by `apiKeyEnv` (read from `env`, default `process.env`) and each pipeline read
 * through `Pipeline.fromConfig` (durations as text, a `retry.budget` made one budget). Fails with one
 * `InvalidOptions` listing every bad path.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as Gateway from "effect-llm-resilience/Gateway"
 * const json = {
 *   upstreams: { openai: { baseURL: "https://api.openai.com/v1", apiKeyEnv: "OPENAI_API_KEY" } },
 *   models: { "gpt-4o-mini": { deployments: [{ id: "mini", upstream: "openai", model: "gpt-4o-mini" }] } },
 *   pipeline: { retry: { maxRetries: 2 } },
 *   keysFile: "keys.json"
 * }
 * const serve = Effect.scoped(Effect.flatMap(Gateway.fromJson(json), (config) => Effect.zipRight(Gateway.make(config), Effect.never)))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const fromJson: (json: unknown, env?: NodeJS.ProcessEnv) => Effect.Effect<Config, InvalidOptions> =
  internalConfig.fromJson
