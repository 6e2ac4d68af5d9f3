import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import type { RateLimiterStore } from "@effect/experimental/RateLimiter"
import { Effect, Fiber, Layer, TestClock } from "effect"
import { readFileSync } from "node:fs"
import type { CircuitBreakerStore } from "../src/CircuitBreaker.js"
import * as FakeLlm from "../src/FakeLlm.js"
import type { IdempotencyStore } from "../src/Idempotency.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as ModelTier from "../src/ModelTier.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Retry from "../src/Retry.js"
import * as Router from "../src/Router.js"
import type { ResponseCacheStore } from "../src/ResponseCache.js"
import type { TokenBudgetStore } from "../src/TokenBudget.js"

const tiers = [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }] as const

/** Valid options for every pattern, one key each. */
const each = {
  idempotency: {},
  tier: { tiers },
  cache: { ttl: "1 hour" },
  budgets: [{ scope: "global", limit: { tokens: 1_000_000 }, period: "month" }, {
    scope: "user",
    limit: { tokens: 10_000 },
    period: "day"
  }],
  trim: {},
  fallback: { models: ["gpt-4o", "gpt-4o-mini"] },
  retry: { maxRetries: 2, baseDelay: "10 millis" },
  breaker: { per: "model" },
  rateLimit: { rpm: 1000 },
  bulkhead: { maxConcurrent: 10, maxQueue: 100 },
  timeout: { attempt: "30 seconds" }
} as const satisfies Pipeline.Options

const all: Pipeline.Options = each

/** The router and hedge options (their own tests below; `each` keeps one model per call). */
const routing = {
  hedge: { after: "5 seconds", maxHedges: 1 },
  router: { deployments: [{ id: "east", model: "gpt-4o" }, { id: "west", model: "gpt-4o" }], strategy: "least-busy" }
} as const satisfies Pipeline.Options

const ask = (model = "gpt-4o", content = "hi", fields: Partial<ConstructorParameters<typeof ChatRequest>[0]> = {}) =>
  new ChatRequest({ model, messages: [{ role: "user", content }], maxTokens: 50, temperature: 0, user: "u1", ...fields })

/** Builds `layer` over a fake provider and returns its error (or "built"). */
const buildError = (layer: Layer.Layer<LlmClient.LlmClient, InvalidOptions, LlmClient.LlmClient>) =>
  Layer.build(layer.pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))))).pipe(
    Effect.scoped,
    Effect.as("built" as const),
    Effect.catchAll((error) => Effect.succeed(error))
  )

describe("Pipeline", () => {
  it.effect("builds every policy in the documented order", () =>
    Effect.gen(function* () {
      const built = yield* Pipeline.policies({ ...all, ...routing })
      expect(built.map((p) => p.name)).toEqual([
        "Idempotency",
        "ModelTier",
        "ResponseCache",
        "TokenBudget(global-month)",
        "TokenBudget(user-day)",
        "PromptTrim",
        "Fallback",
        "Retry",
        "Hedge",
        "Router",
        "CircuitBreaker",
        "RateLimit",
        "Bulkhead",
        "Timeout"
      ])
      // without a tier the cache runs first
      const withoutTier = yield* Pipeline.policies({ ...all, tier: undefined })
      expect(withoutTier.map((p) => p.name).slice(0, 3)).toEqual(["ResponseCache", "Idempotency", "TokenBudget(global-month)"])
      expect(Pipeline.order).toEqual([
        "ResponseCache",
        "Idempotency",
        "ModelTier",
        "TokenBudget",
        "PromptTrim",
        "Fallback",
        "Retry",
        "Hedge",
        "Router",
        "CircuitBreaker",
        "RateLimit",
        "Bulkhead",
        "Timeout"
      ])
    }).pipe(Effect.provide(Pipeline.layerStoresMemory)))

  it("the documented order, in this module's header and in docs/pipeline.md, is the one the table renders", () => {
    expect(Pipeline.orderLines.withoutTier).toBe(
      "ResponseCache → Idempotency → TokenBudget(s) → PromptTrim → Fallback → Retry → Hedge → Router → CircuitBreaker → " +
        "RateLimit → Bulkhead → Timeout → provider"
    )
    expect(Pipeline.orderLines.withTier).toBe("Idempotency → ModelTier → ResponseCache → TokenBudget(s) → PromptTrim → Fallback → …")
    const docs = readFileSync(new URL("../docs/pipeline.md", import.meta.url), "utf8")
    const header = readFileSync(new URL("../src/Pipeline.ts", import.meta.url), "utf8")
    expect(docs).toContain(`\n${Pipeline.orderLines.withoutTier}\nwith a tier:  ${Pipeline.orderLines.withTier}\n`)
    expect(header).toContain(` * ${Pipeline.orderLines.withoutTier}\n * with a tier:  ${Pipeline.orderLines.withTier}\n`)
  })

  it.effect("router and hedge: each hedge is routed again (the slow deployment is busy: the hedge goes to the other), drawn from retry.budget", () =>
    Effect.gen(function* () {
      const run = (ratio: number) =>
        Effect.gen(function* () {
          const budget = yield* Retry.makeBudget({ ratio, minPerSecond: 0 })
          const fake = FakeLlm.layer((c) => (c.request.model === "dep-slow" ? FakeLlm.delay("10 seconds", FakeLlm.reply("slow")) : FakeLlm.reply("fast")))
          const layer = Pipeline.layerMemory({
            retry: { maxRetries: 0, budget },
            hedge: { after: "1 second" },
            router: {
              strategy: "least-busy",
              deployments: [
                { id: "slow", model: "gpt-4o", providerModel: "dep-slow", weight: 1e9 },
                { id: "fast", model: "gpt-4o", providerModel: "dep-fast", weight: 1e-9 }
              ]
            }
          }).pipe(Layer.provideMerge(fake))
          return yield* Effect.gen(function* () {
            const fiber = yield* Effect.fork(LlmClient.complete(ask()))
            yield* TestClock.adjust("1 second")
            yield* TestClock.adjust("10 seconds")
            return yield* Fiber.join(fiber)
          }).pipe(Effect.provide(layer))
        })
      const hedged = yield* run(1)
      expect([hedged.content, hedged.deployment]).toEqual(["fast", "fast"])
      // a budget with no room for it refuses the hedge: the slow deployment answers after its 10 s
      const refused = yield* run(0.1)
      expect([refused.content, refused.deployment]).toEqual(["slow", "slow"])
    }))

  it.effect("only the patterns whose options are given are included", () =>
    Effect.gen(function* () {
      const built = yield* Pipeline.policies({ retry: {}, timeout: { attempt: "1 second" } })
      expect(built.map((p) => p.name)).toEqual(["Retry", "Timeout"])
      expect(yield* Pipeline.policies({})).toEqual([])
      expect(yield* Pipeline.policies({ retry: undefined })).toEqual([])
      expect(yield* Pipeline.policies({ budgets: [] }).pipe(Effect.provide(Pipeline.layerStoresMemory))).toEqual([])
    }))

  it.effect("layerMemory works with each pattern on its own: the layer builds and a call is answered", () =>
    Effect.gen(function* () {
      for (const [key, value] of Object.entries(each)) {
        const response = yield* LlmClient.complete(ask()).pipe(
          Effect.provide(
            Pipeline.layerMemory({ [key]: value } as Pipeline.Options).pipe(
              Layer.provide(FakeLlm.layer(FakeLlm.reply(`ok ${key}`)))
            )
          )
        )
        expect([key, response.content]).toEqual([key, `ok ${key}`])
      }
    }))

  describe("invalid options", () => {
    /** One bad value per pattern, and the path it must be reported at. */
    const bad: ReadonlyArray<readonly [string, unknown, string]> = [
      ["idempotency", { onInFlight: "explode" }, "idempotency.onInFlight"],
      ["tier", { tiers: [] }, "tier.tiers"],
      ["cache", { ttl: 0 }, "cache.ttl"],
      ["budgets", [{ scope: "user", limit: { tokens: 10 }, period: "day" }, { scope: "nope", limit: {}, period: "day" }],
        "budgets.1.scope"],
      ["trim", { strategy: "nope" }, "trim.strategy"],
      ["fallback", { models: [] }, "fallback.models.0"],
      ["retry", { maxRetries: -1 }, "retry.maxRetries"],
      ["breaker", { failureThreshold: 0 }, "breaker.failureThreshold"],
      ["rateLimit", { rpm: -1 }, "rateLimit.rpm"],
      ["bulkhead", { maxConcurrent: -1 }, "bulkhead.maxConcurrent"],
      ["timeout", { attempt: -5 }, "timeout.attempt"]
    ]

    it.effect("a bad option of any pattern fails layerMemory and layer with InvalidOptions at its path", () =>
      Effect.gen(function* () {
        for (const [key, value, path] of bad) {
          const options = { [key]: value } as Pipeline.Options
          for (const layer of [Pipeline.layerMemory(options), Pipeline.layer(options).pipe(Layer.provide(Pipeline.layerStoresMemory))]) {
            const error = yield* buildError(layer)
            expect(error).toBeInstanceOf(InvalidOptions)
            const invalid = error as InvalidOptions
            expect(invalid.target).toBe("Pipeline")
            expect(invalid.issues.map((i) => i.path)).toContain(path)
          }
        }
      }))

    it.effect("every failing path of every pattern is listed at once, unknown keys included", () =>
      Effect.gen(function* () {
        const options = Object.fromEntries([...bad.map(([key, value]) => [key, value]), ["retyr", {}]])
        const error = yield* Effect.flip(Pipeline.policies(options as Pipeline.Options)).pipe(
          Effect.provide(Pipeline.layerStoresMemory)
        )
        const paths = error.issues.map((i) => i.path)
        expect(paths).toEqual(expect.arrayContaining([...bad.map(([, , path]) => path), "retyr"]))
        expect(error.message).toMatch(/^Pipeline options are invalid: /)
        expect(error.issues.find((i) => i.path === "retyr")?.message).toBe(
          "Unknown option; expected one of cache, idempotency, tier, budgets, trim, fallback, retry, hedge, router, breaker, rateLimit, bulkhead, timeout"
        )
      }))

    it.effect("with idempotency configured, an invalid cache.cacheable is still reported (not wrapped and called per request)", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(Pipeline.policies({
          cache: { cacheable: "yes" },
          idempotency: {}
        } as unknown as Pipeline.Options)).pipe(Effect.provide(Pipeline.layerStoresMemory))
        expect(error).toBeInstanceOf(InvalidOptions)
        expect(error.issues.map((i) => i.path)).toContain("cache.cacheable")
      }))

    it.effect("a key that is not an options object (null, a string, a single budget instead of a list) is reported", () =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(Pipeline.policies({
          breaker: null,
          retry: "3",
          budgets: { scope: "user", limit: { tokens: 10 }, period: "day" },
          timeout: { attempt: "1 second" }
        } as unknown as Pipeline.Options))
        expect(error.issues).toEqual([
          { path: "breaker", message: "Expected an options object, actual null" },
          { path: "retry", message: "Expected an options object, actual string" },
          { path: "budgets", message: "Expected a list of TokenBudget options, actual object" }
        ])
        const notAnObject = yield* Effect.flip(Pipeline.policies(null as unknown as Pipeline.Options))
        expect(notAnObject.issues).toEqual([{ path: "", message: "Expected an object of pattern options, actual null" }])
      }).pipe(Effect.provide(Pipeline.layerStoresMemory)))

    it("a misspelt key is a type error", () => {
      // @ts-expect-error: "retyr" is not a pipeline option
      const layer = () => Pipeline.layerMemory({ retry: {}, retyr: {} })
      expect(layer).toBeTypeOf("function")
    })
  })

  it("Requirements names the stores of exactly the patterns given", () => {
    expectTypeOf<Pipeline.Requirements<{}>>().toEqualTypeOf<never>()
    expectTypeOf<Pipeline.Requirements<{ cache: {} }>>().toEqualTypeOf<ResponseCacheStore>()
    expectTypeOf<Pipeline.Requirements<{ idempotency: {} }>>().toEqualTypeOf<IdempotencyStore>()
    expectTypeOf<Pipeline.Requirements<{ budgets: readonly [] }>>().toEqualTypeOf<TokenBudgetStore>()
    // counting uses the Tokenizer in context, or the exact one: it is never a requirement
    expectTypeOf<Pipeline.Requirements<{ trim: {} }>>().toEqualTypeOf<never>()
    expectTypeOf<Pipeline.Requirements<{ breaker: {} }>>().toEqualTypeOf<CircuitBreakerStore>()
    expectTypeOf<Pipeline.Requirements<{ rateLimit: { rpm: 1 } }>>().toEqualTypeOf<RateLimiterStore>()
    // the stateless patterns need nothing
    expectTypeOf<Pipeline.Requirements<{ tier: { tiers: [] } }>>().toEqualTypeOf<never>()
    expectTypeOf<Pipeline.Requirements<{ fallback: { models: ["a"] } }>>().toEqualTypeOf<never>()
    expectTypeOf<Pipeline.Requirements<{ retry: {}; timeout: {} }>>().toEqualTypeOf<never>()
    expectTypeOf<Pipeline.Requirements<{ bulkhead: { maxConcurrent: 1 } }>>().toEqualTypeOf<never>()
    // combinations are the union of their parts; a key given as undefined needs nothing
    expectTypeOf<Pipeline.Requirements<{ budgets: readonly []; trim: {} }>>().toEqualTypeOf<TokenBudgetStore>()
    expectTypeOf<Pipeline.Requirements<{ cache: {}; breaker: {}; retry: {} }>>()
      .toEqualTypeOf<ResponseCacheStore | CircuitBreakerStore>()
    expectTypeOf<Pipeline.Requirements<{ cache: undefined; breaker: {} }>>().toEqualTypeOf<CircuitBreakerStore>()
    expectTypeOf<Pipeline.Requirements<typeof each>>().toEqualTypeOf<
      ResponseCacheStore | IdempotencyStore | TokenBudgetStore | CircuitBreakerStore | RateLimiterStore
    >()
    // a wide type whose keys may be present needs every store its keys may ask for
    expectTypeOf<Pipeline.Requirements<Pipeline.Options>>().toEqualTypeOf<
      ResponseCacheStore | IdempotencyStore | TokenBudgetStore | CircuitBreakerStore | RateLimiterStore | Router.RouterStore
    >()
    expectTypeOf<Pipeline.Requirements<{ router: typeof routing.router; hedge: { after: 1 } }>>().toEqualTypeOf<Router.RouterStore>()
    expectTypeOf<Pipeline.Requirements<{ cache?: { ttl: "1 hour" } }>>().toEqualTypeOf<ResponseCacheStore>()
    // and the layers carry them
    expectTypeOf(Pipeline.layer({ cache: {}, retry: {} })).toEqualTypeOf<
      Layer.Layer<LlmClient.LlmClient, InvalidOptions, LlmClient.LlmClient | ResponseCacheStore>
    >()
    expectTypeOf(Pipeline.layer(all)).toEqualTypeOf<
      Layer.Layer<
        LlmClient.LlmClient,
        InvalidOptions,
        | LlmClient.LlmClient
        | ResponseCacheStore
        | IdempotencyStore
        | TokenBudgetStore
        | CircuitBreakerStore
        | RateLimiterStore
        | Router.RouterStore
      >
    >()
    expectTypeOf(Pipeline.layerMemory(all)).toEqualTypeOf<
      Layer.Layer<LlmClient.LlmClient, InvalidOptions, LlmClient.LlmClient>
    >()
  })

  it.effect("a full pipeline answers, replays, and falls back past an open breaker", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(scenario)
      // each retry schedules its next sleep only after the previous one ends: step the clock until it is done
      while ((yield* Fiber.poll(fiber))._tag === "None") yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fiber)
    }).pipe(
      Effect.provide(
        Pipeline.layerMemory(all).pipe(
          Layer.provideMerge(FakeLlm.layer(({ request }) =>
            request.model === "gpt-4o" && request.messages[0].content.startsWith("broken")
              ? FakeLlm.fail(new LlmError.ServerError({ model: "gpt-4o", status: 503 }))
              : FakeLlm.reply("ok")
          ))
        )
      )
    ))

  describe("ModelTier above the cache and the budgets", () => {
    const tiered = (options: Pipeline.Options, script: FakeLlm.Script = FakeLlm.reply("ok")) =>
      Pipeline.layerMemory(options).pipe(Layer.provideMerge(FakeLlm.layer(script)))

    it.effect("a request for a placeholder model is cached under the model that answered it", () =>
      Effect.gen(function* () {
        const first = yield* LlmClient.complete(ask("auto"))
        expect([first.model, first.servedFrom]).toEqual(["gpt-4o-mini", "provider"])
        const again = yield* LlmClient.complete(ask("auto"))
        expect([again.model, again.servedFrom]).toEqual(["gpt-4o-mini", "cache"])
        // the same prompt pinned to the top tier is another model's answer: not served from the cheap model's entry
        const pinned = yield* LlmClient.complete(ask("auto", "hi", { metadata: { tier: "complex" } }))
        expect([pinned.model, pinned.servedFrom]).toEqual(["gpt-4o", "provider"])
        expect((yield* FakeLlm.calls).map((c) => c.request.model)).toEqual(["gpt-4o-mini", "gpt-4o"])
      }).pipe(Effect.provide(tiered({ tier: { tiers }, cache: {} }))))

    it.effect("an escalated answer is cached too: the repeated request costs no provider call", () =>
      Effect.gen(function* () {
        expect((yield* LlmClient.complete(ask("auto"))).model).toBe("gpt-4o")
        const again = yield* LlmClient.complete(ask("auto"))
        expect([again.model, again.servedFrom]).toEqual(["gpt-4o", "cache"])
        expect((yield* FakeLlm.calls).map((c) => c.request.model)).toEqual(["gpt-4o-mini", "gpt-4o"])
      }).pipe(Effect.provide(tiered(
        { tier: { tiers, escalate: { when: ModelTier.isEmpty } }, cache: {} },
        ({ request }) => FakeLlm.reply(request.model === "gpt-4o-mini" ? "" : "a real answer")
      ))))

    it.effect("a USD budget prices a placeholder-model request at its tier's model, and charges every escalation", () =>
      Effect.gen(function* () {
        // gpt-4o-mini: 100 in + 100 out = $0.000075; gpt-4o: $0.00125. A $0.0014 budget pays for one escalated
        // request (both calls), then refuses the next one's reservation.
        const first = yield* LlmClient.complete(ask("auto", "one"))
        expect(first.model).toBe("gpt-4o")
        const second = yield* Effect.flip(LlmClient.complete(ask("auto", "two")))
        expect(second._tag).toBe("BudgetExceeded")
      }).pipe(Effect.provide(tiered(
        {
          tier: { tiers, escalate: { when: ModelTier.isEmpty } },
          budgets: [{ scope: "user", limit: { usd: 0.0014 }, period: "day" }]
        },
        ({ request }) =>
          FakeLlm.reply(request.model === "gpt-4o-mini" ? "" : "a real answer", {
            usage: { inputTokens: 100, outputTokens: 100 }
          })
      ))))
  })

  it.effect("an idempotency key replays its own answer even when the cache now holds another one", () =>
    Effect.gen(function* () {
      const keyed = ask("gpt-4o-mini", "hi", { idempotencyKey: "order-42" })
      expect((yield* LlmClient.complete(keyed)).content).toBe("answer 1")
      yield* TestClock.adjust("2 minutes") // the cache entry expired; the idempotency record has not
      expect((yield* LlmClient.complete(ask("gpt-4o-mini"))).content).toBe("answer 2") // re-fills the cache
      const retried = yield* LlmClient.complete(keyed)
      expect([retried.content, retried.servedFrom]).toEqual(["answer 1", "idempotency"])
    }).pipe(Effect.provide(
      Pipeline.layerMemory({ idempotency: { requireKey: true }, cache: { ttl: "1 minute" } }).pipe(
        Layer.provideMerge(FakeLlm.layer(({ call }) => FakeLlm.reply(`answer ${call}`)))
      )
    )))
})

const scenario = Effect.gen(function* () {
  const first = yield* LlmClient.complete(ask())
  expect(first.servedFrom).toBe("provider")
  // an identical request: the idempotency policy (keys derived from the request) replays the first answer
  const again = yield* LlmClient.complete(ask())
  expect(again.servedFrom).toBe("idempotency")
  // gpt-4o fails with 503s: retried, then its breaker opens and gpt-4o-mini answers at once
  for (let i = 0; i < 4; i++) {
    const r = yield* LlmClient.complete(ask("gpt-4o", `broken ${i}`))
    expect(r.model).toBe("gpt-4o-mini")
  }
  const calls = yield* FakeLlm.calls
  const toBroken = calls.filter((c) => c.request.model === "gpt-4o" && c.request.messages[0].content.startsWith("broken"))
  // 3 calls (1 + 2 retries) per request until 5 consecutive failures open the breaker: 3 + 2, then none
  expect(toBroken.length).toBe(5)
})
