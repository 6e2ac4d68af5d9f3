import { expect, it } from "@effect/vitest"
import { Context, type Duration, Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import { Redis as IORedis } from "ioredis"
import * as BatchJob from "../../src/BatchJob.js"
import * as ChaosServer from "../../src/ChaosServer.js"
import { ChatRequest } from "../../src/Llm.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, keysUnder, redisUrl, testPrefix } from "../support/redis.js"
import { batchJobStoreContract } from "./BatchJobStore.contract.js"

const connection = (prefix: string) => Redis.layer({ url: redisUrl, prefix })
const storeOn = (prefix: string, ttl?: Duration.DurationInput) =>
  Effect.map(
    Layer.build(Redis.layerBatchJobStore({ ttl }).pipe(Layer.provide(connection(prefix)))),
    (context) => Context.get(context, BatchJob.BatchJobStore)
  )
const record: BatchJob.JobRecord = { batchId: "batch-1", inputFileId: "file-1", digest: "d", items: 2, submittedAt: 0 }

describeRedis("BatchJobStore (Redis)", () => {
  batchJobStoreContract("redis", Redis.layerBatchJobStore().pipe(Layer.provide(connection(testPrefix())), Layer.orDie))

  it.scoped("two connections (processes) share the record; one key under the prefix, hashed, with the TTL", () =>
    Effect.gen(function*() {
      const prefix = testPrefix()
      const a = yield* storeOn(prefix, "1 day")
      const b = yield* storeOn(prefix, "1 day")
      yield* a.claim("nightly tenant-42", record)
      expect(yield* b.get("nightly tenant-42")).toEqual(Option.some(record))
      expect(yield* b.claim("nightly tenant-42", { ...record, batchId: "batch-2" })).toEqual(record)
      const keys = yield* Effect.promise(() => keysUnder(prefix))
      expect(keys).toHaveLength(1)
      expect(keys[0].key).not.toContain("tenant-42")
      expect(keys[0].pttl).toBeGreaterThan(86_400_000 - 60_000)
      expect(keys[0].pttl).toBeLessThanOrEqual(86_400_000)
    }))

  it.scoped("a record that does not decode is a defect, never \"no record\" (which would submit again)", () =>
    Effect.gen(function*() {
      const prefix = testPrefix()
      const store = yield* storeOn(prefix)
      yield* store.claim("k", record)
      const [key] = yield* Effect.promise(() => keysUnder(prefix))
      const raw = new IORedis(redisUrl)
      yield* Effect.addFinalizer(() => Effect.sync(() => raw.disconnect()))
      yield* Effect.promise(() => raw.set(key.key, "{not json"))
      expect(Exit.isFailure(yield* Effect.exit(store.get("k")))).toBe(true)
      expect(Exit.isFailure(yield* Effect.exit(store.claim("k", record)))).toBe(true)
    }))

  it.live("a job submitted by one process is resumed by another over its own connection: one upload, one batch", () =>
    Effect.scoped(Effect.gen(function*() {
      const prefix = testPrefix()
      const server = yield* ChaosServer.make({ batch: { completionTime: "120 millis", failCustomIds: ["item-1"] } })
      const options = { apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL }
      const requests = Array.from({ length: 20 }, (_, i) =>
        new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Item ${i}` }] }))
      const spec: BatchJob.Spec = { key: "cross-process", requests, pollInterval: "15 millis" }
      const first = yield* BatchJob.make(options).pipe(Effect.provideService(BatchJob.BatchJobStore, yield* storeOn(prefix)))
      const dying = yield* Effect.fork(first.run(spec))
      for (let i = 0; i < 500 && (yield* server.batchStats).batchesRetrieved < 1; i++) yield* Effect.sleep("2 millis")
      yield* Fiber.interrupt(dying)
      const second = yield* BatchJob.make(options).pipe(Effect.provideService(BatchJob.BatchJobStore, yield* storeOn(prefix)))
      const result = yield* second.run(spec)
      expect(result.succeeded).toBe(19)
      expect(result.failed).toBe(1)
      const stats = yield* server.batchStats
      expect([stats.filesCreated, stats.batchesCreated]).toEqual([1, 1])
    })))
})
