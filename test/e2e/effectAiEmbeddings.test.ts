import { OpenAiClient, OpenAiEmbeddingModel } from "@effect/ai-openai"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as EffectAi from "../../src/EffectAi.js"
import * as Tokenizer from "../../src/Tokenizer.js"
import * as Embeddings from "../../src/Embeddings.js"
import { embeddingOf } from "../../src/internal/chaosEmbeddings.js"

const model = "text-embedding-3-small"

// The real @effect/ai-openai EmbeddingModel under the bridge, against the ChaosServer.
describe("e2e: EffectAi.layerEmbeddings over @effect/ai-openai", () => {
  it.live("vectors in input order, usage counted and marked estimated; an HTTP error is a typed LlmError", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ perModel: { down: { errors: [{ status: 503, rate: 1 }] } } })
      const modelLayer = (name: string) =>
        OpenAiEmbeddingModel.model(name, { mode: "batched" }).pipe(
          Layer.provide(OpenAiClient.layer({ apiUrl: server.baseURL, apiKey: Redacted.make("sk-chaos") })),
          Layer.provide(FetchHttpClient.layer)
        )
      const client = yield* EffectAi.makeEmbeddings.pipe(Effect.provide(modelLayer(model)))
      const response = yield* client.embed(new Embeddings.EmbedRequest({ model, input: ["alpha", "beta"] }))
      expect(response.embeddings).toHaveLength(2)
      const worst = response.embeddings.reduce((max, vector, i) => {
        const expected = embeddingOf(model, ["alpha", "beta"][i])
        return vector.reduce((m, x, k) => Math.max(m, Math.abs(x - expected[k])), max)
      }, 0)
      expect(worst).toBeLessThan(1e-6)
      // no usage from an EmbeddingModel: the provider step counts the inputs exactly
      const exact = yield* Effect.flatMap(Tokenizer.current, (t) =>
        Effect.zipWith(t.count("alpha", model), t.count("beta", model), (a, b) => a + b))
      expect(response.usage).toEqual({ inputTokens: exact, estimated: true })
      const down = yield* EffectAi.makeEmbeddings.pipe(Effect.provide(modelLayer("down")))
      const error = yield* Effect.flip(down.embed(new Embeddings.EmbedRequest({ model: "down", input: ["x"] })))
      expect(error._tag).toBe("ServerError")
    })))
})
