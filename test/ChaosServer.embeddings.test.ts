import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import OpenAI from "openai"
import * as ChaosServer from "../src/ChaosServer.js"
import { embeddingOf } from "../src/internal/chaosEmbeddings.js"

const client = (baseURL: string) => new OpenAI({ apiKey: "sk-chaos", baseURL, maxRetries: 0 })

// Through the real `openai` SDK (which asks for base64 unless told otherwise, and decodes it).
describe("ChaosServer /v1/embeddings", () => {
  it.live("same text → same vector (base64 and float alike, across servers); by index for an array input", () =>
    Effect.scoped(Effect.gen(function*() {
      const a = yield* ChaosServer.make({ seed: 1 })
      const b = yield* ChaosServer.make({ seed: 99 })
      const texts = ["refund policy", "shipping times", "refund policy"]
      const batch = yield* Effect.promise(() => client(a.baseURL).embeddings.create({ model: "text-embedding-3-small", input: texts }))
      expect(batch.data.map((d) => d.index)).toEqual([0, 1, 2])
      expect(batch.data[0].embedding).toHaveLength(256)
      expect(batch.data[0].embedding).toEqual(batch.data[2].embedding)
      expect(batch.data[0].embedding).not.toEqual(batch.data[1].embedding)
      const norm = Math.sqrt(batch.data[1].embedding.reduce((s, x) => s + x * x, 0))
      expect(norm).toBeCloseTo(1, 5)
      const single = yield* Effect.promise(() =>
        client(b.baseURL).embeddings.create({ model: "text-embedding-3-small", input: "shipping times", encoding_format: "float" }))
      expect(single.data[0].embedding).toEqual(batch.data[1].embedding)
      expect(single.data[0].embedding).toEqual(embeddingOf("text-embedding-3-small", "shipping times"))
      expect(batch.usage.prompt_tokens).toBe(4 + 4 + 4)
      const small = yield* Effect.promise(() =>
        client(a.baseURL).embeddings.create({ model: "text-embedding-3-small", input: "x", dimensions: 8 }))
      expect(small.data[0].embedding).toHaveLength(8)
      expect((yield* a.stats).byDialect).toEqual({ embeddings: 2 })
    })))

  it.live("faults apply as on the chat endpoints; a bad body is a 400 naming its paths", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ perModel: { down: { errors: [{ status: 503, rate: 1 }] } } })
      const error = yield* Effect.promise(() =>
        client(server.baseURL).embeddings.create({ model: "down", input: "x" }).then(() => undefined, (e: unknown) => e))
      expect(error).toBeInstanceOf(OpenAI.APIError)
      expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503)
      const response = yield* Effect.promise(() =>
        fetch(`${server.baseURL}/embeddings`, { method: "POST", body: JSON.stringify({ model: "m", input: [] }), headers: { "content-type": "application/json" } }))
      expect(response.status).toBe(400)
      expect(JSON.stringify(yield* Effect.promise(() => response.json()))).toContain("input")
    })))
})
