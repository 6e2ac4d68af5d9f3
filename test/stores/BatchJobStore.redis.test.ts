import { expect, it } from "@effect/vitest"
import { Context, type Duration, Effect, Exit, Layer, Option } from "effect"
import { Redis as IORedis } from "ioredis"
import * as BatchJob from "../../src/BatchJob.js"
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
})
