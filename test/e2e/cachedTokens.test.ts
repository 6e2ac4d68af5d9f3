import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Option, Redacted, Stream } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as EffectAi from "../../src/EffectAi.js"
import { ChatRequest, type Usage } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as Pricing from "../../src/Pricing.js"
import * as TokenBudget from "../../src/TokenBudget.js"
import * as Tokenizer from "../../src/Tokenizer.js"

// The workload of docs/pricing.md: a 2-block (8192-character) system prompt shared by 10 requests, each with its own
// short question. The ChaosServer caches in 1024-token blocks of 4096 characters, so the first request fills the
// cache and the 9 after it read 2048 cached tokens each.
const system = "You are a careful support assistant. ".repeat(222).slice(0, 8192)
const request = (i: number, model = "gpt-4o-mini") =>
  new ChatRequest({
    model,
    messages: [{ role: "system", content: system }, { role: "user", content: `Ticket ${i}: summarise it.` }],
    maxTokens: 40,
    user: "tenant-1"
  })

const price = Pricing.defaultTable["gpt-4o-mini"]
/** The documented formula: cached input at the cached price, the rest at the input price, output at the output price. */
const expected = (usage: Usage) =>
  ((usage.inputTokens - (usage.cachedInputTokens ?? 0)) * price.inputPerMillion +
    (usage.cachedInputTokens ?? 0) * (price.cachedInputPerMillion ?? price.inputPerMillion) +
    usage.outputTokens * price.outputPerMillion) / 1e6

describe("e2e: cached prompt tokens through the real SDKs against the ChaosServer", () => {
  it.live("chat completions: a repeated prefix is read from the cache and priced at the cached price", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 3, words: 8 })
      const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const context = yield* Layer.build(Layer.merge(TokenBudget.layerStoreMemory, Tokenizer.layerApproximate))
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { usd: 10 }, period: "day" }).pipe(
        Effect.provide(context)
      )
      const client = LlmClient.decorate(base, budget)
      const usages: Array<Usage> = []
      for (let i = 0; i < 10; i++) usages.push((yield* client.complete(request(i))).usage)
      expect(usages[0].cachedInputTokens).toBeUndefined()
      expect(usages.slice(1).map((u) => u.cachedInputTokens)).toEqual(Array(9).fill(2048))
      for (const u of usages) expect(u.inputTokens).toBeGreaterThan(2048)
      const costs = yield* Effect.forEach(usages, (u) => Pricing.cost("gpt-4o-mini", u))
      const cost = costs.reduce((sum, c) => sum + Option.getOrThrow(c), 0)
      const documented = usages.reduce((sum, u) => sum + expected(u), 0)
      expect(cost).toBeCloseTo(documented, 12)
      // docs/pricing.md: 10 prompts of 2057 tokens, 9 × 2048 of them cached: $0.0017031 of input instead of $0.0030855
      expect(usages.map((u) => u.inputTokens)).toEqual(Array(10).fill(2057))
      const input = usages.reduce((sum, u) => sum + Pricing.costOf(price, { ...u, outputTokens: 0 }), 0)
      expect(input).toBeCloseTo(0.0017031, 12)
      expect(10 * 2057 * price.inputPerMillion / 1e6).toBeCloseTo(0.0030855, 12)
      // Without the cache, the same 10 calls would cost more: every prompt token at the input price.
      const uncached = usages.reduce((sum, u) => sum + Pricing.costOf(price, { inputTokens: u.inputTokens, outputTokens: u.outputTokens }), 0)
      expect(uncached - cost).toBeCloseTo(9 * 2048 * (price.inputPerMillion - price.cachedInputPerMillion!) / 1e6, 12)
      // The USD budget charged the cached price (nano-USD, each call rounded up).
      const report = yield* budget.usage()
      expect(report.unit).toBe("usd")
      const used = report.used
      expect(used).toBeGreaterThanOrEqual(documented - 1e-12)
      expect(used).toBeLessThanOrEqual(documented + 10e-9)
    })))

  it.live("a stream's usage chunk carries the cached tokens too; another model has a cache of its own", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 4, words: 8 })
      const client = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      yield* client.complete(request(0))
      const last = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request(1)))).at(-1)
      expect(last?.usage?.cachedInputTokens).toBe(2048)
      expect((yield* client.complete(request(2, "gpt-4o"))).usage.cachedInputTokens).toBeUndefined()
      // a prompt under one block is never cached
      const short = new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
      yield* client.complete(short)
      expect((yield* client.complete(short)).usage.cachedInputTokens).toBeUndefined()
    })))

  it.live("the @effect/ai bridge: OpenAI Responses and Anthropic Messages report the same cached tokens", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 5, words: 8 })
      const openAi = OpenAiLanguageModel.model("gpt-4o-mini").pipe(
        Layer.provide(OpenAiClient.layer({ apiUrl: server.baseURL, apiKey: Redacted.make("sk-chaos") })),
        Layer.provide(FetchHttpClient.layer)
      )
      const anthropic = AnthropicLanguageModel.model("claude-sonnet-4").pipe(
        Layer.provide(AnthropicClient.layer({ apiUrl: server.url, apiKey: Redacted.make("sk-ant-chaos") })),
        Layer.provide(FetchHttpClient.layer)
      )
      for (const [model, layer] of [["gpt-4o-mini", openAi], ["claude-sonnet-4", anthropic]] as const) {
        const client = yield* EffectAi.makeLlmClient().pipe(Effect.provide(layer))
        const first = (yield* client.complete(request(0, model))).usage
        const second = (yield* client.complete(request(1, model))).usage
        expect(first.cachedInputTokens).toBeUndefined()
        expect(second.cachedInputTokens).toBe(2048)
        // Anthropic reports the blocks the first request stored as cache writes (1.25× the input price); OpenAI none.
        expect(first.cacheWriteInputTokens).toBe(model === "claude-sonnet-4" ? 2048 : undefined)
        expect(second.cacheWriteInputTokens).toBeUndefined()
        if (model === "claude-sonnet-4") {
          const claude = Option.getOrThrow(Pricing.find(Pricing.defaultTable, model))
          const writes = 2048 * (claude.cacheWriteInputPerMillion ?? 0) / 1e6
          expect(claude.cacheWriteInputPerMillion).toBeCloseTo(claude.inputPerMillion * 1.25, 12)
          expect(Pricing.costOf(claude, first)).toBeCloseTo(
            (first.inputTokens - 2048) * claude.inputPerMillion / 1e6 + writes + first.outputTokens * claude.outputPerMillion / 1e6,
            12
          )
        }
        // Anthropic leaves cache reads out of input_tokens; the bridge makes the prompt whole, as OpenAI counts it.
        expect(second.inputTokens).toBe(first.inputTokens)
        expect(second.inputTokens).toBeGreaterThan(2048)
      }
    })))
})
