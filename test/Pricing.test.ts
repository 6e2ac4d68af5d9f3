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
