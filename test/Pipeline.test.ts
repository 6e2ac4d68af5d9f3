import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as Pipeline from "../src/Pipeline.js"

const all: Pipeline.Options = {
  cache: { ttl: "1 hour" },
  idempotency: {},
  tier: { tiers: [{ name: "simple", model: "gpt-4o-mini" }, { name: "complex", model: "gpt-4o" }] },
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
}

const ask = (model = "gpt-4o", content = "hi") =>
  new ChatRequest({ model, messages: [{ role: "user", content }], maxTokens: 50, temperature: 0, user: "u1" })

describe("Pipeline", () => {
  it.effect("builds every policy in the documented order", () =>
    Effect.gen(function* () {
      const built = yield* Pipeline.policies(all)
      expect(built.map((p) => p.name)).toEqual([
        "ResponseCache",
        "Idempotency",
        "model-tier",
        "TokenBudget(global-month)",
        "TokenBudget(user-day)",
        "prompt-trim",
        "fallback",
        "retry",
        "circuit-breaker",
        "rate-limit",
        "bulkhead",
        "timeout"
      ])
      expect(Pipeline.order.length).toBe(11)
    }).pipe(Effect.provide(Pipeline.layerStoresMemory)))

  it.effect("only the patterns whose options are given are included", () =>
    Effect.gen(function* () {
      const built = yield* Pipeline.policies({ retry: {}, timeout: { attempt: "1 second" } })
      expect(built.map((p) => p.name)).toEqual(["retry", "timeout"])
    }))

  it.effect("bad options of any pattern fail with InvalidOptions", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Pipeline.policies({ retry: { maxRetries: -1 } }))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path)).toContain("maxRetries")
      const breakerError = yield* Effect.flip(
        Pipeline.policies({ breaker: { failureThreshold: 0 } }).pipe(Effect.provide(Pipeline.layerStoresMemory))
      )
      expect(breakerError._tag).toBe("InvalidOptions")
    }))

  it.effect("a full pipeline answers, caches, and falls back past an open breaker", () =>
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
})

const scenario = Effect.gen(function* () {
      const first = yield* LlmClient.complete(ask())
      expect(first.servedFrom).toBe("provider")
      const again = yield* LlmClient.complete(ask())
      expect(again.servedFrom).toBe("cache")
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
