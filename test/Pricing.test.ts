import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Pricing from "../src/Pricing.js"

describe("Pricing", () => {
  it("finds exact names, dated snapshots and provider-prefixed names", () => {
    const t = Pricing.defaultTable
    expect(Pricing.find(t, "gpt-4o")).toEqual(Option.some(t["gpt-4o"]))
    expect(Pricing.find(t, "gpt-4o-mini-2024-07-18")).toEqual(Option.some(t["gpt-4o-mini"]))
    expect(Pricing.find(t, "gpt-4o-2024-08-06")).toEqual(Option.some(t["gpt-4o"]))
    expect(Pricing.find(t, "gpt-4-0613")).toEqual(Option.some(t["gpt-4"]))
    expect(Pricing.find(t, "openai/gpt-4.1-mini")).toEqual(Option.some(t["gpt-4.1-mini"]))
  })

  it("an unknown model is none, never a family guess or a zero price", () => {
    const t = Pricing.defaultTable
    expect(Pricing.find(t, "llama-3.1-8b")).toEqual(Option.none())
    expect(Pricing.find(t, "gpt-4o-audio-preview")).toEqual(Option.none())
    expect(Pricing.find(t, "gpt-4-custom")).toEqual(Option.none())
    // Names of Object.prototype members are unknown models too, not a function priced as NaN.
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty", "openai/valueOf"]) {
      expect(Pricing.find(t, name)).toEqual(Option.none())
    }
  })

  it("prices usage per million tokens", () => {
    expect(Pricing.costOf(Pricing.defaultTable["gpt-4o"], { inputTokens: 1000, outputTokens: 500 })).toBeCloseTo(0.0075, 12)
    expect(Pricing.costOf(Pricing.defaultTable["gpt-4o-mini"], { inputTokens: 1_000_000, outputTokens: 0 })).toBeCloseTo(0.15, 12)
  })

  it("prices the OpenAI embedding models (input only), their batch price at half, and knows their vector lengths", () => {
    const t = Pricing.defaultTable
    const million = { inputTokens: 1_000_000, outputTokens: 0 }
    expect(Pricing.costOf(t["text-embedding-3-small"], million)).toBeCloseTo(0.02, 12)
    expect(Pricing.costOf(t["text-embedding-3-large"], million)).toBeCloseTo(0.13, 12)
    expect(Pricing.costOf(t["text-embedding-ada-002"], million)).toBeCloseTo(0.1, 12)
    expect(Pricing.batchCostOf(t["text-embedding-3-small"], million)).toBeCloseTo(0.01, 12)
    expect(Pricing.batchCostOf(t["text-embedding-3-large"], million)).toBeCloseTo(0.065, 12)
    expect(Pricing.batchCostOf(t["text-embedding-ada-002"], million)).toBeCloseTo(0.05, 12)
    expect([t["text-embedding-3-small"].dimensions, t["text-embedding-3-large"].dimensions, t["text-embedding-ada-002"].dimensions])
      .toEqual([1536, 3072, 1536])
  })

  it("Anthropic cache writes cost 1.25× input and reads 0.1×; both are parts of the input, reads first", () => {
    const sonnet = Pricing.defaultTable["claude-sonnet-4-5"] // $3 input, $15 output
    // 10,000 prompt tokens: 6,000 read from the cache, 3,000 written to it, 1,000 plain; 100 output
    const usage = { inputTokens: 10_000, outputTokens: 100, cachedInputTokens: 6_000, cacheWriteInputTokens: 3_000 }
    expect(Pricing.costOf(sonnet, usage)).toBeCloseTo((1_000 * 3 + 6_000 * 0.3 + 3_000 * 3.75 + 100 * 15) / 1e6, 12)
    // batch: every price halved, the cache prices scaled as the input price is
    expect(Pricing.batchCostOf(sonnet, usage)).toBeCloseTo((1_000 * 1.5 + 6_000 * 0.15 + 3_000 * 1.875 + 100 * 7.5) / 1e6, 12)
    // counts above the input are capped: never more than the whole prompt at the write price
    const capped = { inputTokens: 1_000, outputTokens: 0, cacheWriteInputTokens: 5_000 }
    expect(Pricing.costOf(sonnet, capped)).toBeCloseTo((1_000 * 3.75) / 1e6, 12)
    // Claude 3 Haiku's published write price is $0.30 (not 1.25 × $0.25)
    expect(Pricing.defaultTable["claude-3-haiku"].cacheWriteInputPerMillion).toBe(0.3)
    // OpenAI has no write price: a write is priced as input
    expect(Pricing.costOf(Pricing.defaultTable["gpt-4o"], { inputTokens: 1_000, outputTokens: 0, cacheWriteInputTokens: 1_000 }))
      .toBeCloseTo(0.0025, 12)
  })

  it.effect("cost and lookup use the default table without a layer", () =>
    Effect.gen(function* () {
      expect(yield* Pricing.cost("gpt-4o-mini", { inputTokens: 1_000_000, outputTokens: 1_000_000 })).toEqual(Option.some(0.75))
      expect(yield* Pricing.cost("my-model", { inputTokens: 1, outputTokens: 1 })).toEqual(Option.none())
      const window = yield* Pricing.lookup("gpt-4.1")
      expect(Option.map(window, (p) => p.contextWindow)).toEqual(Option.some(1_047_576))
    }))

  it.effect("a layer extends and overrides the table", () =>
    Effect.gen(function* () {
      const local = yield* Pricing.cost("my-vllm", { inputTokens: 100, outputTokens: 100 })
      expect(local).toEqual(Option.some(0))
      const discounted = yield* Pricing.cost("gpt-4o", { inputTokens: 1_000_000, outputTokens: 0 })
      expect(discounted).toEqual(Option.some(1))
      expect(yield* Pricing.lookup("gpt-4o-mini")).toEqual(Option.some(Pricing.defaultTable["gpt-4o-mini"]))
    }).pipe(
      Effect.provide(
        Pricing.layer({
          "my-vllm": { inputPerMillion: 0, outputPerMillion: 0, contextWindow: 32768, maxOutputTokens: 4096 },
          "gpt-4o": { inputPerMillion: 1, outputPerMillion: 4, contextWindow: 128000, maxOutputTokens: 16384 }
        })
      )
    ))

  it.effect("bad overrides fail with every failing path", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(
        Pricing.cost("x", { inputTokens: 1, outputTokens: 1 }).pipe(
          Effect.provide(
            Pricing.layer({
              a: { inputPerMillion: -1, outputPerMillion: 1, contextWindow: 0, maxOutputTokens: 10 },
              b: { inputPerMillion: 1, outputPerMillion: "x" as never, contextWindow: 10, maxOutputTokens: 10 },
              // a misspelt field is reported, not ignored
              c: { inputPerMillion: 1, outputPerMillion: 1, contextWindow: 10, maxOutputTokens: 10, cachedPerMillion: 0.5 } as never
            })
          )
        )
      )
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual([
        "a.contextWindow",
        "a.inputPerMillion",
        "b.outputPerMillion",
        "c.cachedPerMillion"
      ])
    }))
})
