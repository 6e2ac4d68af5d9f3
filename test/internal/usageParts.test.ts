import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Pricing from "../../src/Pricing.js"
import { PromptCache } from "../../src/internal/chaosPromptCache.js"
import { usageOf } from "../../src/internal/effectAiResponse.js"
import { toUsage } from "../../src/internal/openaiMapping.js"
import { nanoUsdOf } from "../../src/internal/tokenBudget.js"

describe("cached and reasoning tokens", () => {
  it("OpenAI chat usage: the details are parts of the counts, set only when positive, capped at their whole", () => {
    expect(toUsage({
      prompt_tokens: 2000,
      completion_tokens: 300,
      prompt_tokens_details: { cached_tokens: 1024 },
      completion_tokens_details: { reasoning_tokens: 256 }
    })).toEqual({ inputTokens: 2000, outputTokens: 300, cachedInputTokens: 1024, reasoningTokens: 256 })
    expect(toUsage({
      prompt_tokens: 10,
      completion_tokens: 5,
      prompt_tokens_details: { cached_tokens: 0 },
      completion_tokens_details: null
    })).toEqual({ inputTokens: 10, outputTokens: 5 })
    expect(toUsage({ prompt_tokens: 10, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 99 } }))
      .toEqual({ inputTokens: 10, outputTokens: 5, cachedInputTokens: 10 })
    expect(toUsage({ prompt_tokens: 10, completion_tokens: 5, prompt_tokens_details: { cached_tokens: "7" } }))
      .toEqual({ inputTokens: 10, outputTokens: 5 })
  })

  it("@effect/ai usage: OpenAI's input includes cache reads; Anthropic's is made whole from its metadata", () => {
    expect(usageOf({ inputTokens: 2000, outputTokens: 300, totalTokens: 2300, cachedInputTokens: 1024, reasoningTokens: 100 }))
      .toEqual({ inputTokens: 2000, outputTokens: 300, cachedInputTokens: 1024, reasoningTokens: 100 })
    const anthropic = { anthropic: { usage: { input_tokens: 976, cache_read_input_tokens: 1024, cache_creation_input_tokens: 0, output_tokens: 300 } } }
    expect(usageOf({ inputTokens: 976, outputTokens: 300, totalTokens: 1276, cachedInputTokens: 1024 }, anthropic))
      .toEqual({ inputTokens: 2000, outputTokens: 300, cachedInputTokens: 1024 })
    const writes = { anthropic: { usage: { input_tokens: 10, cache_read_input_tokens: null, cache_creation_input_tokens: 2048 } } }
    const written = usageOf({ inputTokens: 10, outputTokens: 1, totalTokens: 11 }, writes)
    expect(written).toEqual({ inputTokens: 2058, outputTokens: 1, cacheWriteInputTokens: 2048 })
    // the 2048 written tokens at 1.25 × $3 (Anthropic's 5-minute cache write), the other 10 at $3
    expect(Pricing.costOf(Pricing.defaultTable["claude-sonnet-4-5"], written)).toBeCloseTo((10 * 3 + 2048 * 3.75 + 15) / 1e6, 15)
  })

  it("cost: cached input at the cached price, reasoning never charged twice, batch at half, budgets alike", () => {
    const gpt4o = Pricing.defaultTable["gpt-4o"]
    const usage = { inputTokens: 2048, outputTokens: 1000, cachedInputTokens: 1024, reasoningTokens: 600 }
    // 1024 × 2.5 + 1024 × 1.25 + 1000 × 10 (the 600 reasoning tokens are inside the 1000)
    expect(Pricing.costOf(gpt4o, usage)).toBeCloseTo((1024 * 2.5 + 1024 * 1.25 + 1000 * 10) / 1e6, 15)
    expect(Pricing.batchCostOf(gpt4o, usage)).toBeCloseTo(Pricing.costOf(gpt4o, usage) / 2, 15)
    expect(nanoUsdOf(gpt4o, usage)).toBe(Math.ceil(Pricing.costOf(gpt4o, usage) * 1e9 - 1e-6))
    // a model without a cached price charges cached tokens as input (never under-charged)
    const gpt4 = Pricing.defaultTable["gpt-4"]
    expect(Pricing.costOf(gpt4, usage)).toBeCloseTo((2048 * 30 + 1000 * 60) / 1e6, 15)
    // an override without batch prices assumes no discount
    const own = { inputPerMillion: 1, outputPerMillion: 2, contextWindow: 1000, maxOutputTokens: 100 }
    expect(Pricing.batchCostOf(own, { inputTokens: 100, outputTokens: 10 })).toBe(Pricing.costOf(own, { inputTokens: 100, outputTokens: 10 }))
    expect(Pricing.defaultTableAsOf).toMatch(/^\d{4}-\d{2}-\d{2}$/)
  })

  it.effect("a price override's new fields are validated like the others, every bad path listed", () =>
    Effect.gen(function*() {
      const error = yield* Pricing.cost("m", { inputTokens: 1, outputTokens: 1 }).pipe(
        Effect.provide(Pricing.layer({
          m: { inputPerMillion: 1, outputPerMillion: 1, cachedInputPerMillion: -1, batchOutputPerMillion: Number.NaN, contextWindow: 1, maxOutputTokens: 1 }
        })),
        Effect.flip
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path)).toEqual(["m.cachedInputPerMillion", "m.batchOutputPerMillion"])
    }))

  it("the ChaosServer's prompt cache: 1024-token blocks of a prefix seen before on the same model", () => {
    const cache = new PromptCache()
    const block = (c: string) => c.repeat(4096)
    // each lookup: the tokens read from the cache and those it wrote (the blocks it stored that were not there)
    expect(cache.lookup("m", block("a") + block("b") + "tail")).toEqual({ cached: 0, written: 2048 })
    expect(cache.lookup("m", block("a") + block("b") + "other")).toEqual({ cached: 2048, written: 0 })
    expect(cache.lookup("m", block("a") + block("c"))).toEqual({ cached: 1024, written: 1024 })
    expect(cache.lookup("n", block("a"))).toEqual({ cached: 0, written: 1024 })
    // a block matches only after an identical prefix
    expect(cache.lookup("m", block("c"))).toEqual({ cached: 0, written: 1024 })
    expect(cache.lookup("m", "a".repeat(4095))).toEqual({ cached: 0, written: 0 })
  })
})
