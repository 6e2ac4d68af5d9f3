import { HttpApp } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Either, Exit, Fiber, Layer, Option, Redacted, Scope, TestClock } from "effect"
import * as Embeddings from "../src/Embeddings.js"
import * as FakeLlm from "../src/FakeLlm.js"
import * as Gateway from "../src/Gateway.js"
import type { InvalidOptions } from "../src/InvalidOptions.js"
import type * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Clients from "../src/internal/gateway/clients.js"
import * as GatewayCli from "../src/internal/gateway/cli.js"
import * as GatewayConfig from "../src/internal/gateway/config.js"
import * as EmbeddingsRoute from "../src/internal/gateway/embeddings.js"
import * as Errors from "../src/internal/gateway/errors.js"
import { hashSecret, KeyRecord, KeyRefused, KeyStore } from "../src/internal/gateway/keys.js"
import { Drain, router } from "../src/internal/gateway/server.js"
import * as Wire from "../src/internal/gateway/wire.js"

const upstream = { baseURL: "http://127.0.0.1:1/v1", apiKey: Redacted.make("sk-upstream") }
const deployment = (id: string, model = "gpt-4o-mini") => ({ id, upstream: "up", model })
const validConfig: Gateway.Config = {
  upstreams: { up: upstream },
  models: { mini: { deployments: [deployment("d1")] } }
}

const issuesOf = (effect: Effect.Effect<unknown, InvalidOptions>) =>
  Effect.map(Effect.flip(effect), (error) => error.issues.map((i) => i.path))

/** A tiny in-memory KeyStore of this test's own. */
const keyStore = (records: ReadonlyArray<KeyRecord>) =>
  KeyStore.of({
    get: (hash) => Effect.succeed(Option.fromNullable(records.find((r) => r.hash === hash))),
    put: () => Effect.succeed(false),
    list: Effect.succeed(records),
    revoke: () => Effect.succeed(false)
  })

const record = (id: string, tenant: string, extra: Partial<KeyRecord> = {}): KeyRecord => ({
  id,
  tenant,
  hash: hashSecret(`sk-gw-${id}`),
  createdAt: 0,
  ...extra
})

describe("Gateway.Config", () => {
  it.effect("lists every bad path at once: fields, unknown upstreams, repeated ids, unset env, pipeline options", () =>
    Effect.gen(function* () {
      const paths = yield* issuesOf(GatewayConfig.resolve({
        port: 70_000,
        upstreams: { up: { baseURL: "not a url", apiKeyEnv: "GATEWAY_TEST_UNSET" }, "bad name": upstream },
        models: {
          mini: {
            deployments: [deployment("d1"), { id: "d1", upstream: "nowhere", model: "gpt-4o-mini" }],
            pipeline: { retry: { maxRetries: -1 }, router: { deployments: [] } }
          }
        },
        pipeline: { timeout: { attempt: "soon" } },
        shutdown: { grace: "-1 seconds" },
        colour: "blue"
      } as unknown as Gateway.Config, {}))
      expect(paths).toEqual(expect.arrayContaining([
        "port",
        "upstreams.up.baseURL",
        "upstreams.bad name",
        "shutdown.grace",
        "colour"
      ]))
      // the cross-field checks run once the shape is right
      const more = yield* issuesOf(GatewayConfig.resolve({
        upstreams: { up: { baseURL: "http://127.0.0.1:1/v1", apiKeyEnv: "GATEWAY_TEST_UNSET" } },
        models: {
          mini: {
            deployments: [deployment("d1"), { id: "d1", upstream: "nowhere", model: "gpt-4o-mini" }],
            pipeline: { retry: { maxRetries: -1 }, router: { deployments: [] } }
          }
        },
        pipeline: { timeout: { attempt: "soon" } },
        keys: [],
        keysFile: "keys.json"
      } as unknown as Gateway.Config, {}))
      expect(more).toEqual(expect.arrayContaining([
        "keysFile",
        "upstreams.up.apiKeyEnv",
        "models.mini.deployments.1.upstream",
        "models.mini.deployments.1.id",
        "models.mini.pipeline.router",
        "models.mini.pipeline.retry.maxRetries",
        "pipeline.timeout.attempt"
      ]))
    }))

  it.effect("applies the defaults: 127.0.0.1, any free port, 10 s of grace, 1000 clients, the default pipeline per route", () =>
    Effect.gen(function* () {
      const resolved = yield* GatewayConfig.resolve({ ...validConfig, pipeline: { retry: { maxRetries: 1 } } })
      expect(resolved.host).toBe("127.0.0.1")
      expect(resolved.port).toBe(0)
      expect(Duration.toMillis(resolved.grace)).toBe(10_000)
      expect(resolved.maxClients).toBe(1000)
      expect(resolved.models.get("mini")?.pipeline).toEqual({ retry: { maxRetries: 1 } })
    }))

  it.effect("fromJson reads apiKeyEnv from the environment and each pipeline through Pipeline.fromConfig", () =>
    Effect.gen(function* () {
      const json = {
        upstreams: { up: { baseURL: "http://127.0.0.1:1/v1", apiKeyEnv: "UP_KEY" } },
        models: { mini: { deployments: [deployment("d1")], pipeline: { retry: { maxRetries: 2 } } } },
        pipeline: { timeout: { attempt: "5 seconds" } }
      }
      const config = yield* Gateway.fromJson(json, { UP_KEY: "sk-from-env" })
      const resolved = yield* GatewayConfig.resolve(config, { UP_KEY: "sk-from-env" })
      expect(Redacted.value(resolved.upstreams.get("up")!.apiKey)).toBe("sk-from-env")
      expect(resolved.models.get("mini")?.pipeline.retry?.maxRetries).toBe(2)
      const paths = yield* issuesOf(Gateway.fromJson({
        ...json,
        models: { mini: { deployments: [deployment("d1")], pipeline: { retry: { maxRetries: "many" } } } }
      }, {}))
      expect(paths).toEqual(expect.arrayContaining(["models.mini.pipeline.retry.maxRetries", "upstreams.up.apiKeyEnv"]))
    }))
})

describe("error mapping", () => {
  const statusOf = (error: LlmError.LlmError) => Errors.fromLlmError(error, "mini")
  it("maps each error to OpenAI's status, type and code, with Retry-After when the wait is known", () => {
    const limited = statusOf(new LlmError.RateLimited({ retryAfter: Duration.millis(1500), source: "client" }))
    expect([limited.status, limited.body.error.code, limited.headers["retry-after"]]).toEqual([429, "rate_limit_exceeded", "2"])
    const budget = Errors.fromLlmError(
      new LlmError.BudgetExceeded({ scope: "key:key_a:0", requested: 10, remaining: 0 }),
      "mini",
      () => Duration.seconds(30)
    )
    expect([budget.status, budget.body.error.type, budget.body.error.code, budget.headers["retry-after"]])
      .toEqual([429, "insufficient_quota", "budget_exceeded", "30"])
    const open = statusOf(new LlmError.CircuitOpen({ key: "gpt-4o-mini", retryAfter: Duration.seconds(5) }))
    expect([open.status, open.headers["retry-after"]]).toEqual([503, "5"])
    expect(statusOf(new LlmError.BadRequest({ param: "temperature" })).status).toBe(400)
    expect(statusOf(new LlmError.ContextTooLong({})).body.error.code).toBe("context_length_exceeded")
    expect(statusOf(new LlmError.ModelNotFound({ model: "upstream-name" })).status).toBe(404)
    expect(statusOf(new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(1) })).status).toBe(504)
  })

  it("an upstream's auth failure is the gateway's (502), never the client's 401; messages name the gateway model only", () => {
    const auth = statusOf(new LlmError.AuthError({ model: "secret-upstream-model", status: 401 }))
    expect(auth.status).toBe(502)
    expect(auth.body.error.code).toBe("upstream_auth_error")
    const notFound = statusOf(new LlmError.ModelNotFound({ model: "secret-upstream-model" }))
    expect(notFound.body.error.message).not.toContain("secret-upstream-model")
    expect(notFound.body.error.message).toContain("mini")
  })

  it("AllModelsFailed answers with the client's own fault first, else the last model's failure", () => {
    const ownFault = new LlmError.AllModelsFailed({
      failures: [new LlmError.ServerError({ status: 503 }), new LlmError.ContextTooLong({}), new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(1) })]
    })
    expect(statusOf(ownFault).body.error.code).toBe("context_length_exceeded")
    const upstreams = new LlmError.AllModelsFailed({
      failures: [new LlmError.ServerError({ status: 503 }), new LlmError.CircuitOpen({ key: "b", retryAfter: Duration.seconds(3) })]
    })
    expect(statusOf(upstreams).status).toBe(503)
  })

  it("keys: 401 for a missing or unknown key, 403 for a revoked or expired one", () => {
    expect(Errors.fromKeyRefused(new KeyRefused({ reason: "missing" })).status).toBe(401)
    expect(Errors.fromKeyRefused(new KeyRefused({ reason: "unknown" })).body.error.code).toBe("invalid_api_key")
    expect(Errors.fromKeyRefused(new KeyRefused({ reason: "revoked", keyId: "key_a" })).status).toBe(403)
    expect(Errors.fromKeyRefused(new KeyRefused({ reason: "expired", keyId: "key_a" })).status).toBe(403)
    expect(Errors.modelNotAllowed("big").status).toBe(403)
  })
})

describe("request mapping", () => {
  const body = (extra: object = {}) =>
    Either.getOrThrow(Wire.decodeBody({ model: "mini", messages: [{ role: "user", content: "hi" }], ...extra }))

  it("Idempotency-Key becomes idempotencyKey and x-llm-metadata-* the metadata (ModelTier reads metadata.tier)", () => {
    const request = Either.getOrThrow(Wire.toRequest(body({ metadata: { feature: "chat" } }), {
      tenant: "acme",
      headers: { "idempotency-key": "order-42", "x-llm-metadata-tier": "small", "x-llm-metadata-feature": "search", "x-other": "no" }
    }))
    expect(request.idempotencyKey).toBe("order-42")
    expect(request.metadata).toEqual({ tier: "small", feature: "search" })
  })

  it("the user is scoped by the tenant, and no tenant can spell another's prefix", () => {
    const userOf = (tenant: string, user?: string) =>
      Either.getOrThrow(Wire.toRequest(body(user === undefined ? {} : { user }), { tenant, headers: {} })).user
    expect(userOf("acme", "u1")).toBe("acme:u1")
    expect(userOf("acme")).toBe("acme:")
    expect(userOf("a:b", "c")).not.toBe(userOf("a", "b:c"))
    expect(userOf("acme", "u1")).not.toBe(userOf("globex", "u1"))
  })

  it("maps OpenAI's fields (max_completion_tokens, developer role, content parts, stop, tools)", () => {
    const request = Either.getOrThrow(Wire.toRequest(body({
      messages: [{ role: "developer", content: "be brief" }, { role: "user", content: [{ type: "text", text: "a" }, { type: "text", text: "b" }] }],
      max_completion_tokens: 50,
      stop: "END",
      tools: [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }],
      tool_choice: { type: "function", function: { name: "lookup" } }
    }), { tenant: "t", headers: {} }))
    expect(request.messages.map((m) => [m.role, m.content])).toEqual([["system", "be brief"], ["user", "ab"]])
    expect([request.maxTokens, request.stop, request.tools?.[0].name, request.toolChoice]).toEqual([50, ["END"], "lookup", { name: "lookup" }])
  })

  it("a bad body lists its failing paths and never quotes a value", () => {
    const error = Either.flip(Wire.decodeBody({ model: "", messages: [{ role: "wizard", content: "secret prompt" }] }))
    const left = Either.getOrThrow(error)
    expect(left.message).toContain("model")
    expect(left.message).toContain("messages.0.role")
    expect(left.message).not.toContain("secret prompt")
  })
})

describe("per-key policies", () => {
  const pipeline: Pipeline.Options = {
    cache: { ttl: "1 minute" },
    idempotency: {},
    budgets: [{ scope: "user", limit: { tokens: 1000 }, period: "day" }],
    retry: { maxRetries: 1 },
    breaker: { per: "model" },
    timeout: { attempt: "5 seconds" }
  }
  const routeOf = (options: Pipeline.Options) =>
    Effect.gen(function* () {
      const resolved = yield* GatewayConfig.resolve({ ...validConfig, pipeline: options })
      const fake = yield* FakeLlm.make(FakeLlm.reply("ok"))
      return yield* Clients.buildRoute(resolved, "mini", new Map([["up", fake.client]]))
    }).pipe(Effect.provide(Pipeline.layerStoresMemory))

  it.effect("the key's budgets and rate limit go after the cache and idempotency, before the route's budgets and retries; the breaker and timeout wrap each deployment", () =>
    Effect.gen(function* () {
      const route = yield* routeOf(pipeline)
      const key = record("key_a", "acme", { budgets: [{ tokens: 100, period: "day" }, { usd: 1, period: "month" }], rateLimit: { rpm: 10 } })
      const own = yield* Effect.provide(Clients.keyPolicies(key), Pipeline.layerStoresMemory)
      expect(Clients.policiesFor(route, own).map((p) => p.name)).toEqual([
        "ResponseCache",
        "Idempotency",
        "TokenBudget(key:key_a:0)",
        "TokenBudget(key:key_a:1)",
        "RateLimit",
        "TokenBudget(user-day)",
        "Retry",
        "Router"
      ])
    }))

  it.effect("a key without limits adds nothing", () =>
    Effect.gen(function* () {
      const route = yield* routeOf({ retry: { maxRetries: 1 } })
      const own = yield* Effect.provide(Clients.keyPolicies(record("key_b", "acme")), Pipeline.layerStoresMemory)
      expect(Clients.policiesFor(route, own).map((p) => p.name)).toEqual(["Retry", "Router"])
    }))

  it.effect("a spent calendar budget tells the client when its period ends (the key's or the route's)", () =>
    Effect.gen(function* () {
      const route = yield* routeOf(pipeline)
      const key = record("key_a", "acme", { budgets: [{ tokens: 100, period: "hour" }, { tokens: 100, period: { rolling: "1 hour" } }] })
      const now = Date.UTC(2026, 0, 1, 10, 59, 30)
      const resetIn = Clients.budgetResetIn(route, key, now)
      expect(Duration.toMillis(resetIn("key:key_a:0")!)).toBe(30_000)
      expect(resetIn("key:key_a:1")).toBeUndefined() // a rolling window has no one end
      expect(Duration.toMillis(resetIn("user-day")!)).toBe(Date.UTC(2026, 0, 2) - now)
    }))

  it("the (key, model) clients are bounded, least recently used out first", () => {
    const lru = new Clients.Lru<number>(2)
    lru.set("a", 1)
    lru.set("b", 2)
    lru.get("a")
    lru.set("c", 3)
    expect([lru.get("a"), lru.get("b"), lru.get("c"), lru.size]).toEqual([1, undefined, 3, 2])
    // a key whose limits change gets a client of its own
    expect(Clients.clientKey(record("key_a", "t"), "mini")).not.toBe(
      Clients.clientKey(record("key_a", "t", { rateLimit: { rpm: 5 } }), "mini")
    )
  })
})

describe("embeddings", () => {
  const service = (outcome: "ok" | LlmError.LlmError): Embeddings.Service => ({
    embed: (request) =>
      outcome === "ok"
        ? Effect.succeed(new Embeddings.EmbedResponse({ model: request.model, embeddings: request.input.map(() => [1, 0]), usage: { inputTokens: 3 } }))
        : Effect.fail(outcome)
  })
  const request = new Embeddings.EmbedRequest({ model: "small", input: ["a"] })
  const none: Embeddings.Policy = (next) => next

  it.effect("the next deployment takes over after an error it may not have; a caller's error is returned as is", () =>
    Effect.gen(function* () {
      const run = (first: LlmError.LlmError) =>
        EmbeddingsRoute.failover([
          { id: "one", model: "m1", service: service(first) },
          { id: "two", model: "m2", service: service("ok") }
        ])(request, none)
      const answered = yield* run(new LlmError.ServerError({ status: 503 }))
      expect([answered.deployment, answered.response.model]).toEqual(["two", "m2"])
      const refused = yield* Effect.flip(run(new LlmError.BadRequest({})))
      expect(refused._tag).toBe("BadRequest")
    }))

  it.effect("a key's budget refuses embeddings that do not fit, under the name its chat calls are charged to", () =>
    Effect.gen(function* () {
      const key = record("key_a", "acme", { budgets: [{ tokens: 5, period: "day" }] })
      const limits = yield* EmbeddingsRoute.keyLimits(key)
      const long = new Embeddings.EmbedRequest({ model: "small", input: ["a sentence that is longer than five tokens for sure"] })
      const error = yield* Effect.flip(limits(service("ok").embed)(long))
      expect(error._tag === "BudgetExceeded" && error.scope).toBe(Clients.keyBudgetName(key, 0))
      expect(EmbeddingsRoute.toRequest(Either.getOrThrow(EmbeddingsRoute.decodeBody({ model: "small", input: "x", user: "u" })), "acme").user)
        .toBe("acme:u")
    }).pipe(Effect.provide(Pipeline.layerStoresMemory)))
})

describe("the serve command line", () => {
  it("reads --config, --host and --port; anything else is refused", () => {
    expect(GatewayCli.parse(["--config", "gw.json", "--port=8080"])).toEqual(Either.right({ _tag: "serve", configFile: "gw.json", host: undefined, port: 8080 }))
    expect(GatewayCli.parse([])).toEqual(Either.right({ _tag: "help" }))
    expect(Either.isLeft(GatewayCli.parse(["--port", "80"]))).toBe(true) // no --config
    expect(Either.isLeft(GatewayCli.parse(["--config", "gw.json", "--port", "x"]))).toBe(true)
    expect(Either.isLeft(GatewayCli.parse(["--config", "gw.json", "--colour", "blue"]))).toBe(true)
  })
})

describe("drain", () => {
  it.effect("refuses new requests at once and waits for those in flight up to the grace", () =>
    Effect.gen(function* () {
      const drain = new Drain()
      drain.enter()
      const closing = yield* Effect.fork(drain.close(Duration.seconds(10)))
      yield* TestClock.adjust("1 second")
      expect(drain.closing).toBe(true)
      expect(closing.unsafePoll()).toBeNull()
      drain.leave()
      expect(drain.inFlight).toBe(0)
      expect(Exit.isSuccess((yield* Fiber.await(closing)))).toBe(true)
      // with a request that never ends, the grace bounds the wait
      const stuck = new Drain()
      stuck.enter()
      const bounded = yield* Effect.fork(stuck.close(Duration.seconds(10)))
      yield* TestClock.adjust("9 seconds")
      expect(bounded.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(bounded)
      // as a scope's finalizer (uninterruptible), the grace still bounds the wait
      const asFinalizer = new Drain()
      asFinalizer.enter()
      const scoped = yield* Effect.fork(Effect.scoped(Effect.addFinalizer(() => asFinalizer.close(Duration.seconds(10)))))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(scoped)
    }))
})

/** The routes served in process (no socket): FakeLlm as the upstream, this file's KeyStore, memory stores. */
const appOf = (options: Pipeline.Options, keys: ReadonlyArray<KeyRecord>, upstreamClient?: LlmClient.Service) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(Pipeline.layerStoresMemory, scope)
    const resolved = yield* GatewayConfig.resolve({
      upstreams: { up: upstream },
      models: { mini: { deployments: [deployment("d1")] }, big: { deployments: [deployment("d2", "gpt-4o")] } },
      pipeline: options
    })
    const fake = upstreamClient ?? (yield* FakeLlm.make(FakeLlm.reply("four words of answer"))).client
    const upstreams = new Map([["up", fake]])
    const routes = new Map<string, Clients.Route>()
    for (const model of resolved.models.keys()) {
      routes.set(model, yield* Effect.provide(Clients.buildRoute(resolved, model, upstreams), context))
    }
    const clients = Clients.makeClients(routes, 10, context as Context.Context<Clients.Stores>)
    const drain = new Drain()
    const app = router({ models: ["mini", "big"], routes, client: clients.get, drain, metrics: Effect.succeed("") }).pipe(
      Effect.provideService(KeyStore, keyStore(keys))
    )
    const handler = HttpApp.toWebHandler(app)
    const post = (key: string | undefined, body: object, headers: Record<string, string> = {}) =>
      Effect.promise(async () => {
        const response = await handler(new Request("http://gateway/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json", ...(key === undefined ? {} : { authorization: `Bearer ${key}` }), ...headers },
          body: JSON.stringify(body)
        }))
        return { status: response.status, headers: response.headers, json: await response.json() as Record<string, any> }
      })
    const get = (path: string, key: string) =>
      Effect.promise(async () => {
        const response = await handler(new Request(`http://gateway${path}`, { headers: { authorization: `Bearer ${key}` } }))
        return { status: response.status, json: await response.json() as Record<string, any> }
      })
    return { post, get, drain, close: Scope.close(scope, Exit.void) }
  })

const ask = (content: string, extra: object = {}) => ({ model: "mini", messages: [{ role: "user", content }], temperature: 0, ...extra })

describe("the routes (in process)", () => {
  it.live("answers with the x-llm-* headers; 401 without a key, 403 for a model the key may not call; /v1/models filtered", () =>
    Effect.gen(function* () {
      const gw = yield* appOf({}, [record("key_a", "acme", { models: ["mini"] })])
      const ok = yield* gw.post("sk-gw-key_a", ask("hello"))
      expect(ok.status).toBe(200)
      expect(ok.json.choices[0].message.content).toBe("four words of answer")
      expect(ok.headers.get("x-llm-deployment")).toBe("d1")
      expect(ok.headers.get("x-llm-served-from")).toBe("provider")
      expect(ok.headers.get("x-llm-cache")).toBe("miss")
      expect(ok.headers.get("x-llm-model")).toBe("gpt-4o-mini")
      expect(Number(ok.headers.get("x-llm-cost-usd"))).toBeGreaterThan(0)
      expect((yield* gw.post(undefined, ask("hello"))).status).toBe(401)
      expect((yield* gw.post("sk-gw-nobody", ask("hello"))).json.error.code).toBe("invalid_api_key")
      const big = yield* gw.post("sk-gw-key_a", { ...ask("hello"), model: "big" })
      expect([big.status, big.json.error.code]).toEqual([403, "model_not_allowed"])
      const models = yield* gw.get("/v1/models", "sk-gw-key_a")
      expect(models.json.data.map((m: { id: string }) => m.id)).toEqual(["mini"])
      yield* gw.close
    }))

  it.live("two tenants never share a cached answer; one tenant's second identical call is a hit", () =>
    Effect.gen(function* () {
      const gw = yield* appOf({ cache: { ttl: "1 minute" } }, [record("key_a", "acme"), record("key_b", "globex")])
      const first = yield* gw.post("sk-gw-key_a", ask("same prompt", { user: "u1" }))
      const again = yield* gw.post("sk-gw-key_a", ask("same prompt", { user: "u1" }))
      const other = yield* gw.post("sk-gw-key_b", ask("same prompt", { user: "u1" }))
      expect([first.headers.get("x-llm-cache"), again.headers.get("x-llm-cache"), other.headers.get("x-llm-cache")])
        .toEqual(["miss", "hit", "miss"])
      expect(again.headers.get("x-llm-cost-usd")).toBe("0")
      yield* gw.close
    }))

  it.live("a key's spent budget is a 429 with Retry-After; a cache hit is still served (the cache runs first)", () =>
    Effect.gen(function* () {
      const key = record("key_a", "acme", { budgets: [{ tokens: 40, period: "day" }] })
      const gw = yield* appOf({ cache: { ttl: "1 minute" } }, [key])
      const first = yield* gw.post("sk-gw-key_a", ask("cached", { max_tokens: 10 }))
      expect(first.status).toBe(200)
      const refused = yield* gw.post("sk-gw-key_a", ask("another prompt", { max_tokens: 30 }))
      expect([refused.status, refused.json.error.code]).toEqual([429, "budget_exceeded"])
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0)
      const hit = yield* gw.post("sk-gw-key_a", ask("cached", { max_tokens: 10 }))
      expect([hit.status, hit.headers.get("x-llm-cache")]).toEqual([200, "hit"])
      yield* gw.close
    }))

  it.live("a key's rate limit refuses the request over its rpm with 429 and Retry-After", () =>
    Effect.gen(function* () {
      const gw = yield* appOf({}, [record("key_a", "acme", { rateLimit: { rpm: 2 } })])
      const statuses = []
      for (let i = 0; i < 3; i++) statuses.push((yield* gw.post("sk-gw-key_a", ask(`n${i}`))).status)
      expect(statuses).toEqual([200, 200, 429])
      yield* gw.close
    }))

  it.live("while closing, new requests get an OpenAI-shaped 503", () =>
    Effect.gen(function* () {
      const gw = yield* appOf({}, [record("key_a", "acme")])
      gw.drain.closing = true
      const refused = yield* gw.post("sk-gw-key_a", ask("late"))
      expect([refused.status, refused.json.error.code]).toEqual([503, "shutting_down"])
      yield* gw.close
    }))

  it.live("the Idempotency-Key header: the second request with the key is a replay of the first (one upstream call)", () =>
    Effect.gen(function* () {
      const fake = yield* FakeLlm.make(FakeLlm.reply("exactly once"))
      const gw = yield* appOf({ idempotency: {} }, [record("key_a", "acme")], fake.client)
      const headers = { "idempotency-key": "order-42" }
      const first = yield* gw.post("sk-gw-key_a", ask("charge the card"), headers)
      const second = yield* gw.post("sk-gw-key_a", ask("charge the card"), headers)
      expect([first.headers.get("x-llm-served-from"), second.headers.get("x-llm-served-from")]).toEqual(["provider", "idempotency"])
      expect((yield* fake.recorder.calls).length).toBe(1)
      yield* gw.close
    }))

  it.live("a bad body is a 400 naming the failing fields", () =>
    Effect.gen(function* () {
      const gw = yield* appOf({}, [record("key_a", "acme")])
      const bad = yield* gw.post("sk-gw-key_a", { model: "mini", messages: "hello" })
      expect(bad.status).toBe(400)
      expect(bad.json.error.message).toContain("messages")
      yield* gw.close
    }))
})

