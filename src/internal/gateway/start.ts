/**
 * Starting a gateway from a resolved configuration: the stores (Redis when `redis` is given, else memory), the key
 * store, one OpenAI-compatible client per upstream, the routes, the metrics reader, and the HTTP server, in that
 * order, so that closing the scope undoes them in reverse: first the drain (new requests get 503, those in flight
 * get `grace` to finish), then the handlers still running are interrupted, then the server and the stores close.
 */
import * as Metrics from "@effect/opentelemetry/Metrics"
import * as Resource from "@effect/opentelemetry/Resource"
import type { HttpServerError } from "@effect/platform"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { Context, Effect, Layer, type Scope } from "effect"
import * as Http from "node:http"
import { InvalidOptions } from "../../InvalidOptions.js"
import type * as LlmClient from "../../LlmClient.js"
import * as OpenAi from "../../OpenAi.js"
import * as Pipeline from "../../Pipeline.js"
import * as Redis from "../../Redis.js"
import * as Tokenizer from "../../Tokenizer.js"
import * as NodeHttpServer from "../nodeHttpServer.js"
import * as GatewayKeysRedis from "../redis/gatewayKeys.js"
import type * as Embeddings from "../../Embeddings.js"
import { buildRoute, clientKey, Lru, makeClients, type Route, type Stores } from "./clients.js"
import * as EmbeddingsRoute from "./embeddings.js"
import type { Resolved } from "./config.js"
import { type KeyRecord, KeyStore, type KeyStoreService } from "./keys.js"
import * as KeysCache from "./keysCache.js"
import * as KeysMemory from "./keysMemory.js"
import { Drain, router } from "./server.js"

/** A running gateway. */
export interface Running {
  /** `http://host:port`. */
  readonly url: string
  /** `http://host:port/v1`: the `baseURL` of OpenAI clients. */
  readonly baseURL: string
  readonly port: number
}

const redisStores = Layer.mergeAll(Redis.layerStores, Redis.layerRouterStore, Tokenizer.layer)

/** Every store (and the redis client, when there is one), for the life of the scope. */
const stores = (config: Resolved) =>
  config.redis === undefined
    ? Layer.build(Pipeline.layerStoresMemory)
    : Layer.build(Layer.provideMerge(redisStores, Redis.layer({ url: config.redis.url, prefix: config.redis.prefix })))

const noKeys = new InvalidOptions({
  target: "Gateway",
  issues: [{ path: "keys", message: "Give keys, keysFile or redis (whose key store every replica shares), or provide a KeyStore" }]
})

/**
 * The key store: the one in context if any, else `keys` (memory), `keysFile` or the Redis store, the last two
 * behind a short cache (a key created or revoked elsewhere takes effect within 5 seconds).
 */
const keyStore = (
  config: Resolved,
  context: Context.Context<Stores>
): Effect.Effect<KeyStoreService, InvalidOptions> =>
  Effect.flatMap(Effect.serviceOption(KeyStore), (given) => {
    if (given._tag === "Some") return Effect.succeed(given.value)
    if (config.keys !== undefined) return KeysMemory.makeMemory(config.keys)
    if (config.keysFile !== undefined) return Effect.flatMap(KeysMemory.makeFile(config.keysFile), (s) => KeysCache.cached(s))
    const redis = Context.getOption(context as Context.Context<unknown>, Redis.RedisClient)
    if (redis._tag === "Some") return KeysCache.cached(GatewayKeysRedis.make(redis.value))
    return Effect.fail(noKeys)
  })

/** The Prometheus text of every Effect metric (the library's `llm_*` and `gen_ai.*` included). */
const metricsText = Effect.gen(function* () {
  const exporter = new PrometheusExporter({ preventServerStart: true })
  yield* Layer.build(Metrics.layer(() => exporter).pipe(
    Layer.provide(Resource.layer({ serviceName: "effect-llm-resilience-gateway" }))
  ))
  const serializer = new PrometheusSerializer()
  return Effect.promise(() => exporter.collect()).pipe(Effect.map((result) => serializer.serialize(result.resourceMetrics)))
})

/** The embedding routes: one service per upstream they use, each model over its deployments; the keys' limits cached. */
const embeddingRoutes = (config: Resolved, context: Context.Context<Stores>) =>
  Effect.gen(function* () {
    if (config.embeddings.size === 0) return undefined
    const services = new Map<string, Embeddings.Service>()
    for (const route of config.embeddings.values()) {
      for (const d of route.deployments) {
        const upstream = config.upstreams.get(d.upstream)!
        if (!services.has(d.upstream)) {
          services.set(d.upstream, yield* OpenAi.makeEmbeddings({ apiKey: upstream.apiKey, baseURL: upstream.baseURL }))
        }
      }
    }
    const routes = new Map([...config.embeddings].map(([model, route]) => [
      model,
      EmbeddingsRoute.failover(route.deployments.map((d) => ({ id: d.id, model: d.model, service: services.get(d.upstream)! })))
    ]))
    const cache = new Lru<Embeddings.Policy>(config.maxClients)
    const limits = (key: KeyRecord) =>
      Effect.suspend(() => {
        const id = clientKey(key, "/v1/embeddings")
        const found = cache.get(id)
        if (found !== undefined) return Effect.succeed(found)
        return Effect.tap(Effect.provide(EmbeddingsRoute.keyLimits(key), context), (built) => Effect.sync(() => cache.set(id, built)))
      })
    return { routes, limits }
  })

/** Starts the gateway for the life of the scope. */
export const start = (
  config: Resolved
): Effect.Effect<Running, InvalidOptions | HttpServerError.ServeError | Redis.RedisError, Scope.Scope> =>
  Effect.gen(function* () {
    const context = (yield* stores(config)) as Context.Context<Stores>
    const keys = yield* keyStore(config, context)
    const upstreams = new Map<string, LlmClient.Service>()
    for (const [name, upstream] of config.upstreams) {
      upstreams.set(name, yield* OpenAi.make({ apiKey: upstream.apiKey, baseURL: upstream.baseURL }))
    }
    const routes = new Map<string, Route>()
    for (const model of config.models.keys()) {
      routes.set(model, yield* Effect.provide(buildRoute(config, model, upstreams), context))
    }
    const clients = makeClients(routes, config.maxClients, context)
    const embeddings = yield* embeddingRoutes(config, context)
    const drain = new Drain()
    const metrics = yield* metricsText
    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: config.port, host: config.host })
    const app = { models: [...config.models.keys()], routes, client: clients.get, embeddings, drain, metrics }
    yield* server.serve(router(app)).pipe(Effect.provideService(KeyStore, keys), Effect.provide(context))
    // Added last, so it runs first when the scope closes: before the handlers are interrupted and the server closes.
    yield* Effect.addFinalizer(() => drain.close(config.grace))
    const port = server.address._tag === "TcpAddress" ? server.address.port : 0
    const host = config.host.includes(":") ? `[${config.host}]` : config.host
    const url = `http://${host}:${port}`
    return { url, baseURL: `${url}/v1`, port }
  })
