import { expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as Pipeline from "../src/Pipeline.js"
import * as Redis from "../src/Redis.js"
import * as Tokenizer from "../src/Tokenizer.js"
import { describeRedis, redisUrl, testPrefix } from "./support/redis.js"

const options = {
  cache: { ttl: "1 hour" },
  budgets: [{ scope: "user", limit: { tokens: 1_000 }, period: "day" }],
  retry: { maxRetries: 1, baseDelay: 0 },
  breaker: { per: "model" }
} as const

// One "process": its own connection, its own fake provider, the shared prefix.
const processLayer = (prefix: string) =>
  Pipeline.layer(options).pipe(
    Layer.provideMerge(FakeLlm.layer(FakeLlm.reply("shared answer", { usage: { inputTokens: 100, outputTokens: 100 } }))),
    Layer.provide(Layer.merge(Redis.layerStores, Tokenizer.layer)),
    Layer.provide(Redis.layer({ url: redisUrl, prefix }))
  )

const ask = (content: string, user = "u1") =>
  new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content }], maxTokens: 100, temperature: 0, user })

describeRedis("Pipeline over Redis stores (two processes)", () => {
  it.live("a cache entry and a budget are shared by two processes", () =>
    Effect.gen(function* () {
      const prefix = testPrefix()
      const a = yield* Layer.build(processLayer(prefix))
      const b = yield* Layer.build(processLayer(prefix))
      const first = yield* LlmClient.complete(ask("q1")).pipe(Effect.provide(a))
      expect(first.servedFrom).toBe("provider")
      const second = yield* LlmClient.complete(ask("q1")).pipe(Effect.provide(b))
      expect(second.servedFrom).toBe("cache")
      // each answered call uses 200 tokens of u1's 1,000: the two processes together get 4 more, then a refusal
      const answered: Array<string> = []
      for (let i = 0; i < 6; i++) {
        const r = yield* Effect.either(LlmClient.complete(ask(`other ${i}`)).pipe(Effect.provide(i % 2 === 0 ? a : b)))
        answered.push(r._tag === "Right" ? "ok" : r.left._tag)
      }
      expect(answered).toEqual(["ok", "ok", "ok", "ok", "BudgetExceeded", "BudgetExceeded"])
      const callsA = yield* FakeLlm.calls.pipe(Effect.provide(a))
      const callsB = yield* FakeLlm.calls.pipe(Effect.provide(b))
      expect(callsA.length + callsB.length).toBe(5)
    }).pipe(Effect.scoped))
})
