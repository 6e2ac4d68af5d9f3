import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Layer } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import { ModelNotFound } from "../src/LlmError.js"
import * as Pipeline from "../src/Pipeline.js"

/** The environment as a ConfigProvider sees it (names split on "_"). */
const env = (vars: Record<string, string>) => ConfigProvider.fromMap(new Map(Object.entries(vars)), { pathDelim: "_" })

const options = (provider: ConfigProvider.ConfigProvider, prefix?: string) =>
  Pipeline.fromConfig(prefix).pipe(Effect.withConfigProvider(provider))

const expected = {
  cache: { ttl: "1 hour", capacity: 500 },
  budgets: [{ scope: "user", limit: { tokens: 20_000 }, period: "day", alertAt: [0.5, 0.9] }],
  fallback: { models: ["gpt-4o", "gpt-4o-mini"] },
  retry: { maxRetries: 2, baseDelay: "200 millis", honorRetryAfter: true },
  breaker: { per: "model", failureThreshold: 3, halfOpenAfter: "30 seconds" },
  timeout: { attempt: "30 seconds", firstToken: 5_000 }
}

describe("Pipeline.fromConfig / layerConfig", () => {
  it.effect("from the environment: the option names in CONSTANT_CASE under PIPELINE_, lists comma-separated", () =>
    Effect.gen(function* () {
      const read = yield* options(env({
        PIPELINE_CACHE_TTL: "1 hour",
        PIPELINE_CACHE_CAPACITY: "500",
        PIPELINE_BUDGETS: JSON.stringify([{ scope: "user", limit: { tokens: 20_000 }, period: "day", alertAt: [0.5, 0.9] }]),
        PIPELINE_FALLBACK_MODELS: "gpt-4o,gpt-4o-mini",
        PIPELINE_RETRY_MAX_RETRIES: "2",
        PIPELINE_RETRY_BASE_DELAY: "200 millis",
        PIPELINE_RETRY_HONOR_RETRY_AFTER: "true",
        PIPELINE_BREAKER_PER: "model",
        PIPELINE_BREAKER_FAILURE_THRESHOLD: "3",
        PIPELINE_BREAKER_HALF_OPEN_AFTER: "30 seconds",
        PIPELINE_TIMEOUT_ATTEMPT: "30 seconds",
        PIPELINE_TIMEOUT_FIRST_TOKEN: "5000", // a number of milliseconds
        OTHER_APP_SETTING: "ignored"
      }))
      expect(read).toEqual(expected)
    }))

  it.effect("from a file (ConfigProvider.fromJson): the options object itself, with no prefix or under one", () =>
    Effect.gen(function* () {
      expect(yield* options(ConfigProvider.fromJson(expected), "")).toEqual(expected)
      expect(yield* options(ConfigProvider.fromJson({ llm: { pipeline: expected } }), "llm.pipeline")).toEqual(expected)
      expect(yield* options(ConfigProvider.fromJson({ pipeline: { timeout: { attempt: 1000 } } }))).toEqual({
        timeout: { attempt: 1000 }
      })
    }))

  it.effect("nested options and unions: object fields one by one, or one JSON text", () =>
    Effect.gen(function* () {
      const read = yield* options(env({
        PIPELINE_BREAKER_HALF_OPEN_AFTER_INITIAL: "1 second",
        PIPELINE_BREAKER_HALF_OPEN_AFTER_MAX: "1 minute",
        PIPELINE_BREAKER_FAILURE_RATE_THRESHOLD: "0.5",
        PIPELINE_BREAKER_FAILURE_RATE_WINDOW_CALLS: "20",
        PIPELINE_CACHE_CACHE_FALLBACK_ANSWERS: "{\"ttl\":\"5 minutes\"}",
        PIPELINE_TIER: JSON.stringify({ tiers: [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }] })
      }))
      expect(read).toEqual({
        breaker: { halfOpenAfter: { initial: "1 second", max: "1 minute" }, failureRate: { threshold: 0.5, window: { calls: 20 } } },
        cache: { cacheFallbackAnswers: { ttl: "5 minutes" } },
        tier: { tiers: [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }] }
      })
      expect(yield* options(env({ PIPELINE_CACHE_CACHE_FALLBACK_ANSWERS: "false" }))).toEqual({
        cache: { cacheFallbackAnswers: false }
      })
    }))

  it.effect("the real environment (ConfigProvider.fromEnv, the default)", () =>
    Effect.acquireUseRelease(
      Effect.sync(() => Object.assign(process.env, { PIPELINE_RETRY_MAX_RETRIES: "4", PIPELINE_FALLBACK_MODELS: "a,b" })),
      () => Effect.map(options(ConfigProvider.fromEnv()), (read) => expect(read).toEqual({ retry: { maxRetries: 4 }, fallback: { models: ["a", "b"] } })),
      () => Effect.sync(() => {
        delete process.env.PIPELINE_RETRY_MAX_RETRIES
        delete process.env.PIPELINE_FALLBACK_MODELS
      })
    ))

  it.effect("every bad value is listed, each at its option path, in one InvalidOptions", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(options(env({
        PIPELINE_RETRY_MAX_RETRIES: "three",
        PIPELINE_RETRY_BUDGET_RATIO: "-1",
        PIPELINE_TIMEOUT_ATTEMPT: "soon",
        PIPELINE_CACHE_CAPACITY: "0",
        PIPELINE_BUDGETS: "[{ not json",
        PIPELINE_FALLBACK_MODELS: "gpt-4o",
        PIPELINE_BREAKER: "{\"perr\":\"model\"}"
      })))
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag !== "InvalidOptions") return
      expect(error.target).toBe("Pipeline")
      expect(error.issues.map((i) => i.path).sort()).toEqual([
        "breaker.perr",
        "budgets",
        "cache.capacity",
        "retry.budget.ratio",
        "retry.maxRetries",
        "timeout.attempt"
      ])
      expect(error.message).toContain("retry.maxRetries")
    }))

  it.effect("router and hedge from the environment (deployments as one JSON list) and from a file; bad values listed", () =>
    Effect.gen(function* () {
      const fromEnv = yield* options(env({
        PIPELINE_HEDGE_AFTER_PERCENTILE: "95",
        PIPELINE_HEDGE_MAX_HEDGES: "2",
        PIPELINE_ROUTER_STRATEGY: "least-busy",
        PIPELINE_ROUTER_PROVIDER_QUOTA: "false",
        PIPELINE_ROUTER_DEPLOYMENTS: JSON.stringify([
          { id: "east", model: "gpt-4o", weight: 2 },
          { id: "west", model: "gpt-4o", providerModel: "gpt-4o-2024-08-06", rpm: 500 }
        ]),
        PIPELINE_RATE_LIMIT_PROVIDER_QUOTA: "true",
        PIPELINE_RATE_LIMIT_TPM_CHARGE: "estimate"
      }))
      expect(fromEnv).toEqual({
        hedge: { after: { percentile: 95 }, maxHedges: 2 },
        router: {
          strategy: "least-busy",
          providerQuota: false,
          deployments: [
            { id: "east", model: "gpt-4o", weight: 2 },
            { id: "west", model: "gpt-4o", providerModel: "gpt-4o-2024-08-06", rpm: 500 }
          ]
        },
        rateLimit: { providerQuota: true, tpmCharge: "estimate" }
      })
      const file = { hedge: { after: "800 millis" }, router: { deployments: [{ id: "a", model: "gpt-4o" }], cooldown: "5 seconds" } }
      expect(yield* options(ConfigProvider.fromJson(file), "")).toEqual(file)
      const error = yield* Effect.flip(options(ConfigProvider.fromJson({
        hedge: { after: "soon", maxHedges: 99 },
        router: { deployments: [{ id: "a", model: "gpt-4o" }, { id: "b", model: "gpt-4o", weight: -1 }], strategy: "fastest" }
      }), ""))
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag !== "InvalidOptions") return
      expect(error.issues.map((i) => i.path).sort()).toEqual([
        "hedge.after",
        "hedge.maxHedges",
        "router.deployments.1.weight",
        "router.strategy"
      ])
    }))

  it.effect("a retry.budget given as options becomes one budget shared by the pipeline's retries", () =>
    Effect.gen(function* () {
      const read = yield* options(ConfigProvider.fromJson({ retry: { maxRetries: 2, budget: { ratio: 0.2, window: "10 seconds" } } }), "")
      const budget = read.retry?.budget
      expect(typeof budget).toBe("object")
      expect(budget).not.toEqual({ ratio: 0.2, window: "10 seconds" }) // the built budget, not its options
      expect((yield* Pipeline.policies({ retry: read.retry })).map((p) => p.name)).toEqual(["Retry"])
    }))

  it.effect("layerConfig is layerMemory with the options read: fallback, then a cache hit", () =>
    Effect.gen(function* () {
      const Provider = FakeLlm.layer(({ request }) =>
        request.model === "gpt-4o" ? FakeLlm.fail(new ModelNotFound({ model: "gpt-4o" })) : FakeLlm.reply("from the mini")
      )
      const Live = Pipeline.layerConfig("").pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromJson({
          cache: { ttl: "1 hour" },
          fallback: { models: ["gpt-4o", "gpt-4o-mini"] },
          timeout: { attempt: "10 seconds" }
        }))),
        Layer.provideMerge(Provider)
      )
      const question = new ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], temperature: 0 })
      const [first, second, calls] = yield* Effect.all([
        LlmClient.complete(question),
        LlmClient.complete(question),
        FakeLlm.calls
      ]).pipe(Effect.provide(Live))
      expect([first.model, first.servedFrom, second.servedFrom]).toEqual(["gpt-4o-mini", "provider", "cache"])
      expect(calls.map((c) => c.request.model)).toEqual(["gpt-4o", "gpt-4o-mini"])
    }))

  it.effect("layerConfig fails to build with the InvalidOptions", () =>
    Effect.gen(function* () {
      const Live = Pipeline.layerConfig().pipe(
        Layer.provide(Layer.setConfigProvider(env({ PIPELINE_TIMEOUT_ATTEMPT: "0" }))),
        Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
      )
      const error = yield* Effect.flip(Effect.provide(LlmClient.complete(new ChatRequest({ model: "m", messages: [] })), Live))
      expect(error._tag).toBe("InvalidOptions")
      if (error._tag === "InvalidOptions") expect(error.issues.map((i) => i.path)).toEqual(["timeout.attempt"])
    }))
})
