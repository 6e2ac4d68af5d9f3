import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Redacted, Stream } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as TokenBudget from "../../src/TokenBudget.js"
import * as Tokenizer from "../../src/Tokenizer.js"

const request = (i: number) =>
  new ChatRequest({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `Summarise support ticket number ${i} in one short sentence.` }],
    maxTokens: 40
  })

// Through the real `openai` SDK against a server that reports no usage at all (ChaosServer with `usage: false`).
// Before the library counted usage itself, a 300-token budget let every one of 15 requests through, each charged 0.
describe("e2e: a token budget against a server that reports no usage", () => {
  it.live("charges the library's own count, marked estimated, and refuses once the limit is reached", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 9, usage: false })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const context = yield* Layer.build(Layer.merge(TokenBudget.layerStoreMemory, Tokenizer.layer))
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 300 }, period: "day" }).pipe(
        Effect.provide(context)
      )
      const client = LlmClient.decorate(base, budget)
      const outcomes: Array<string> = []
      let charged = 0
      for (let i = 0; i < 15; i++) {
        const exit = yield* Effect.either(client.complete(request(i)))
        if (exit._tag === "Right") {
          expect(exit.right.usage.estimated).toBe(true)
          expect(exit.right.usage.inputTokens).toBeGreaterThan(0)
          expect(exit.right.usage.outputTokens).toBeGreaterThan(0)
          charged += exit.right.usage.inputTokens + exit.right.usage.outputTokens
          outcomes.push("ok")
        } else {
          expect(exit.left._tag).toBe("BudgetExceeded")
          outcomes.push(exit.left._tag)
        }
      }
      const answered = outcomes.filter((o) => o === "ok").length
      expect(answered).toBeGreaterThan(0)
      expect(answered).toBeLessThan(15)
      expect(outcomes.slice(answered).every((o) => o === "BudgetExceeded")).toBe(true)
      const usage = yield* budget.usage()
      expect(usage.used).toBe(charged)
      expect(usage.used + usage.reserved).toBeLessThanOrEqual(300)
      expect((yield* server.stats).requests).toBe(answered)
    })))

  it.live("a stream without a usage chunk is charged the counted prompt and the text received", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 10, usage: false })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const context = yield* Layer.build(Layer.merge(TokenBudget.layerStoreMemory, Tokenizer.layer))
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 10_000 }, period: "day" }).pipe(
        Effect.provide(context)
      )
      const client = LlmClient.decorate(base, budget)
      const chunks = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request(1))))
      const last = chunks.at(-1)
      expect(last?.usage?.estimated).toBe(true)
      const text = chunks.map((c) => c.content).join("")
      const prompt = yield* Tokenizer.countMessages(request(1).messages, "gpt-4o-mini").pipe(Effect.provide(Tokenizer.layer))
      const completion = yield* Tokenizer.count(text, "gpt-4o-mini").pipe(Effect.provide(Tokenizer.layer))
      expect(last?.usage).toMatchObject({ inputTokens: prompt, outputTokens: completion })
      expect((yield* budget.usage()).used).toBe(prompt + completion)
    })))
})
