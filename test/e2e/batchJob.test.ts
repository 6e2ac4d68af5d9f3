import { describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import OpenAI from "openai"
import { Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import * as BatchJob from "../../src/BatchJob.js"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as Embeddings from "../../src/Embeddings.js"
import { embeddingOf } from "../../src/internal/chaosEmbeddings.js"
import { ChatRequest } from "../../src/Llm.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as Pricing from "../../src/Pricing.js"

const requests = Array.from({ length: 500 }, (_, i) =>
  new ChatRequest({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `Classify support ticket ${i} as billing, bug or other.` }],
    maxTokens: 20
  }))
const failing = ["item-7", "item-250", "item-499"]

const waitFor = <A>(read: Effect.Effect<A>, done: (a: A) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) {
      const value = yield* read
      if (done(value)) return value
      yield* Effect.sleep("2 millis")
    }
    return yield* Effect.dieMessage("condition not reached")
  })

// Through the real `openai` SDK (files.create, batches.create / retrieve / cancel, files.content) against the
// ChaosServer's Batch API.
describe("e2e: BatchJob against the ChaosServer", () => {
  it.live("500 items, 3 failing: 497 answers and 3 typed failures, a restart resumes the batch, at half the cost", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 2, words: 4, batch: { completionTime: "150 millis", failCustomIds: failing } })
      const options = { apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL }
      const store = yield* Layer.build(BatchJob.layerStoreMemory)
      const spec: BatchJob.Spec = { key: "classify-500", requests, pollInterval: "20 millis" }

      // The first process submits, polls a while, then dies.
      const first = yield* BatchJob.make(options).pipe(Effect.provide(store))
      const dying = yield* Effect.fork(first.run(spec))
      yield* waitFor(server.batchStats, (s) => s.batchesRetrieved >= 2)
      yield* Fiber.interrupt(dying)
      expect((yield* server.batchStats).batchesCreated).toBe(1)

      // A new handle (a new SDK client) over the same store resumes the same batch.
      const second = yield* BatchJob.make(options).pipe(Effect.provide(store))
      const result = yield* second.run(spec)
      const stats = yield* server.batchStats
      expect(stats.batchesCreated).toBe(1)
      expect(stats.filesCreated).toBe(1)
      expect(result.status).toBe("completed")
      expect(result.succeeded).toBe(497)
      expect(result.failed).toBe(3)
      expect(result.results).toHaveLength(500)
      const failures = result.results.flatMap((exit, i) => Exit.isFailure(exit) ? [i] : [])
      expect(failures).toEqual([7, 250, 499])
      for (const i of failures) {
        const exit = result.results[i]
        expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : undefined).toBe("ServerError")
      }
      // every answer is the one for its own request (the server's answer depends only on the prompt)
      const client = yield* OpenAi.make(options)
      for (const i of [0, 1, 123, 498]) {
        const sync = yield* client.complete(requests[i])
        const batched = result.results[i]
        expect(Exit.isSuccess(batched) ? batched.value.content : undefined).toBe(sync.content)
        expect(Exit.isSuccess(batched) ? batched.value.usage : undefined).toEqual(sync.usage)
      }
      // at batch prices: half what the same usage costs synchronously
      const syncCost = Option.getOrThrow(yield* Pricing.cost("gpt-4o-mini", result.usage))
      expect(Option.getOrThrow(result.costUsd)).toBeCloseTo(syncCost / 2, 12)
      expect(result.usage.inputTokens).toBeGreaterThan(497 * 10)

      // Running the key again re-reads the same batch: still one upload, one batch.
      const again = yield* second.run(spec)
      expect(again.batchId).toBe(result.batchId)
      expect((yield* server.batchStats).batchesCreated).toBe(1)
      // The same key with other requests is a conflict, not a resumption.
      const conflict = yield* Effect.flip(second.run({ ...spec, requests: requests.slice(1) }))
      expect(conflict._tag).toBe("BatchJobConflict")
    })))

  it.live("an expired batch: the lines run come back, the rest are BatchItemNotRun { reason: expired }", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 3, batch: { completionTime: "50 millis", expireAfterItems: 4 } })
      const jobs = yield* BatchJob.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL }).pipe(
        Effect.provide(BatchJob.layerStoreMemory)
      )
      const result = yield* jobs.run({ key: "expiring", requests: requests.slice(0, 10), pollInterval: "10 millis" })
      expect(result.status).toBe("expired")
      expect(result.succeeded).toBe(4)
      const reasons = result.results.slice(4).map((exit) =>
        Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error._tag === "BatchItemNotRun" ? exit.cause.error.reason : "?")
      expect(reasons).toEqual(Array(6).fill("expired"))
    })))

  it.live("cancel: the polling run returns the cancelled batch, every item not run", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* ChaosServer.make({ seed: 4, batch: { completionTime: "1 hour" } })
      const jobs = yield* BatchJob.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL }).pipe(
        Effect.provide(BatchJob.layerStoreMemory)
      )
      const running = yield* Effect.fork(jobs.run({ key: "to-cancel", requests: requests.slice(0, 3), pollInterval: "10 millis" }))
      yield* waitFor(server.batchStats, (s) => s.batchesRetrieved >= 1)
      yield* jobs.cancel("to-cancel")
      const result = yield* Fiber.join(running)
      expect(result.status).toBe("cancelled")
      expect(result.succeeded).toBe(0)
      expect(result.results.map((e) => Exit.isFailure(e) && e.cause._tag === "Fail" ? e.cause.error._tag : "?"))
        .toEqual(["BatchItemNotRun", "BatchItemNotRun", "BatchItemNotRun"])
      expect((yield* server.batchStats).batchesCancelled).toBe(1)
      expect(Option.getOrThrow(result.costUsd)).toBe(0)
    })))

  it.live("embeddings lines: vectors mapped back by custom_id (3 failing), the cost at the embedding batch price", () =>
    Effect.scoped(Effect.gen(function*() {
      const model = "text-embedding-3-small"
      const server = yield* ChaosServer.make({ batch: { completionTime: "30 millis", failCustomIds: ["item-3", "item-40"] } })
      const jobs = yield* BatchJob.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL }).pipe(
        Effect.provide(BatchJob.layerStoreMemory)
      )
      // 60 requests: most of one text, some of three, one asking for 64 dimensions
      const texts = (i: number) => (i % 7 === 0 ? [`doc ${i} a`, `doc ${i} b`, `doc ${i} c`] : [`document number ${i}`])
      const embedRequests = Array.from({ length: 60 }, (_, i) => {
        const [first, ...rest] = texts(i)
        return new Embeddings.EmbedRequest({ model, input: [first, ...rest], ...(i === 5 ? { dimensions: 64 } : {}) })
      })
      const result = yield* jobs.runEmbeddings({ key: "embed-60", requests: embedRequests, pollInterval: "10 millis" })
      expect(result.status).toBe("completed")
      expect([result.succeeded, result.failed]).toEqual([58, 2])
      expect(result.results.flatMap((exit, i) => Exit.isFailure(exit) ? [i] : [])).toEqual([3, 40])
      for (const [i, exit] of result.results.entries()) {
        if (Exit.isFailure(exit)) continue
        // each vector is the one the server gives its own text (same text → same vector), in input order
        expect(exit.value.embeddings).toHaveLength(texts(i).length)
        exit.value.embeddings.forEach((vector, k) => {
          const expected = embeddingOf(model, texts(i)[k], i === 5 ? 64 : undefined)
          expect(vector).toHaveLength(expected.length)
          expect(Math.max(...vector.map((x, d) => Math.abs(x - expected[d])))).toBeLessThan(1e-6)
        })
      }
      const tokens = result.results.reduce((sum, exit) => sum + (Exit.isSuccess(exit) ? exit.value.usage.inputTokens : 0), 0)
      expect(result.usage).toEqual({ inputTokens: tokens, outputTokens: 0 })
      // $0.01 per million tokens at the Batch API, half the synchronous $0.02
      expect(Option.getOrThrow(result.costUsd)).toBeCloseTo((tokens * 0.01) / 1e6, 15)
      const sync = Pricing.costOf(Pricing.defaultTable[model], { inputTokens: tokens, outputTokens: 0 })
      expect(Option.getOrThrow(result.costUsd)).toBeCloseTo(sync / 2, 15)
      // the batch carries the job's key and input digests, to find it with batches.list after a crash
      const sdk = new OpenAI({ apiKey: "sk-chaos", baseURL: server.baseURL, maxRetries: 0 })
      const remote = yield* Effect.promise(() => sdk.batches.retrieve(result.batchId))
      expect(remote.metadata).toEqual({
        batch_job_key: createHash("sha256").update("embed-60").digest("hex"),
        batch_job_input: expect.stringMatching(/^[0-9a-f]{64}$/)
      })
      // a chat job under the same key is another job: a conflict, never these results
      const conflict = yield* Effect.flip(jobs.run({ key: "embed-60", requests: requests.slice(0, 1), pollInterval: "10 millis" }))
      expect(conflict._tag).toBe("BatchJobConflict")
    })))

  it.effect("options and specs are validated, every bad path listed, the key never quoted", () =>
    Effect.gen(function*() {
      const bad = yield* Effect.flip(BatchJob.make({
        apiKey: "sk-SECRET" as unknown as Redacted.Redacted<string>,
        baseURL: "not a url",
        maxTokensParam: "tokens" as "max_tokens"
      }).pipe(Effect.provide(BatchJob.layerStoreMemory)))
      expect(bad.issues.map((i) => i.path)).toEqual(["apiKey", "baseURL", "maxTokensParam"])
      expect(JSON.stringify(bad)).not.toContain("SECRET")
      const jobs = yield* BatchJob.make({ apiKey: Redacted.make("sk-x"), baseURL: "http://127.0.0.1:9/v1" }).pipe(
        Effect.provide(BatchJob.layerStoreMemory)
      )
      const spec = yield* Effect.flip(jobs.run({ key: "", requests: [], pollInterval: 0 }))
      expect(spec._tag).toBe("InvalidOptions")
      expect(spec._tag === "InvalidOptions" ? spec.issues.map((i) => i.path) : []).toEqual(["key", "requests.0", "pollInterval"])
    }))
})
