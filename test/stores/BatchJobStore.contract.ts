import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer, Option } from "effect"
import { BatchJobStore, type JobRecord } from "../../src/BatchJob.js"

let counter = 0
const uniqueKey = (label: string) => `contract:batch:${label}:${++counter}`
const record = (batchId: string): JobRecord => ({ batchId, inputFileId: `file-${batchId}`, digest: "d1", items: 3, submittedAt: 1_700_000_000_000 })

/** The contract every BatchJobStore backend passes. */
export const batchJobStoreContract = (name: string, layer: Layer.Layer<BatchJobStore>) =>
  describe(`BatchJobStore contract: ${name}`, () => {
    it.effect("an unknown key has no record; the first claim stores it, a later claim gets the first one back", () =>
      Effect.gen(function*() {
        const store = yield* BatchJobStore
        const key = uniqueKey("claim")
        expect(yield* store.get(key)).toEqual(Option.none())
        expect(yield* store.claim(key, record("b1"))).toEqual(record("b1"))
        expect(yield* store.claim(key, record("b2"))).toEqual(record("b1"))
        expect(yield* store.get(key)).toEqual(Option.some(record("b1")))
      }).pipe(Effect.provide(layer)))

    it.effect("50 concurrent claims of one key with different batches: all get the same, single record", () =>
      Effect.gen(function*() {
        const store = yield* BatchJobStore
        const key = uniqueKey("race")
        const held = yield* Effect.all(
          Array.from({ length: 50 }, (_, i) => store.claim(key, record(`b${i}`))),
          { concurrency: "unbounded" }
        )
        expect(new Set(held.map((r) => r.batchId)).size).toBe(1)
        expect(yield* store.get(key)).toEqual(Option.some(held[0]))
      }).pipe(Effect.provide(layer)))

    it.effect("keys are independent, whatever characters they hold", () =>
      Effect.gen(function*() {
        const store = yield* BatchJobStore
        const a = uniqueKey("a:with spaces/and:colons")
        const b = uniqueKey("b")
        yield* store.claim(a, record("ba"))
        expect(yield* store.get(b)).toEqual(Option.none())
        expect(yield* store.claim(b, record("bb"))).toEqual(record("bb"))
        expect(Option.map(yield* store.get(a), (r) => r.batchId)).toEqual(Option.some("ba"))
      }).pipe(Effect.provide(layer)))
  })
