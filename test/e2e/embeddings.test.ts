import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as Embeddings from "../../src/Embeddings.js"
import { embeddingOf } from "../../src/internal/chaosEmbeddings.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as Retry from "../../src/Retry.js"

const model = "text-embedding-3-small"
const one = (text: string, extra: Partial<{ dimensions: number; user: string }> = {}) =>
  new Embeddings.EmbedRequest({ model, input: [text], ...extra })

// Through the real `openai` SDK against the ChaosServer's /v1/embeddings (same text → same vector).
describe("e2e: Embeddings over OpenAi against the ChaosServer", () => {
  it.live("200 concurrent single-text calls coalesce into ≤ 10 upstream requests, every vector to its own caller", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 1 })
      const base = yield* OpenAi.makeEmbeddings({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const client = Embeddings.decorate(base, yield* Embeddings.batching({ window: "10 millis", maxBatchSize: 50 }))
      const texts = Array.from({ length: 200 }, (_, i) => `document number ${i} about ${i % 7 === 0 ? "refunds" : "shipping"}`)
      const responses = yield* Effect.all(texts.map((text) => client.embed(one(text))), { concurrency: "unbounded" })
      const upstream = (yield* server.stats).byDialect.embeddings
      expect(upstream).toBeLessThanOrEqual(10)
      expect(upstream).toBe(4) // 200 callers, 50 texts a request
      expect(upstream).toBeGreaterThanOrEqual(4) // 200 / 50
      // float32 on the wire: each component within 1e-6 of the server's vector for that caller's own text
      const worst = responses.reduce((max, response, i) => {
        expect(response.embeddings).toHaveLength(1)
        const expected = embeddingOf(model, texts[i])
        return response.embeddings[0].reduce((m, x, k) => Math.max(m, Math.abs(x - expected[k])), max)
      }, 0)
      expect(worst).toBeLessThan(1e-6)
      // The callers' token shares add up to what the server counted.
      const counted = texts.reduce((sum, t) => sum + Math.ceil(t.length / 4), 0)
      expect(responses.reduce((sum, r) => sum + r.usage.inputTokens, 0)).toBe(counted)
    })))

  it.live("calls with other dimensions or users are never mixed; multi-text calls pass through; Retry applies", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 1, faults: { errors: [{ status: 503, rate: 0.3 }] } })
      const base = yield* OpenAi.makeEmbeddings({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
      const client = Embeddings.decorate(
        base,
        Embeddings.around((call) => call.pipe(Retry.withRetry({ maxRetries: 10, baseDelay: "1 millis", maxDelay: "5 millis" }))),
        yield* Embeddings.batching({ window: "10 millis" })
      )
      const [small, alice, bob, pair] = yield* Effect.all([
        client.embed(one("same text", { dimensions: 8 })),
        client.embed(one("same text", { user: "alice" })),
        client.embed(one("same text", { user: "bob" })),
        client.embed(new Embeddings.EmbedRequest({ model, input: ["a", "b"] }))
      ], { concurrency: "unbounded" })
      expect(small.embeddings[0]).toHaveLength(8)
      expect(alice.embeddings[0]).toHaveLength(256)
      expect(alice.embeddings).toEqual(bob.embeddings)
      expect(pair.embeddings).toHaveLength(2)
      expect((yield* server.stats).byOutcome.ok).toBe(4)
    })))

  it.effect("batching options are validated, every bad path listed", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Embeddings.batching({ window: 0, maxBatchSize: 0 }))
      expect(error.issues.map((i) => i.path)).toEqual(["window", "maxBatchSize"])
    }))
})
