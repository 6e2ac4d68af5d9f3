/**
 * The BatchJob's store Tag, its record and the memory store, apart from the SDK-bound module so the Redis module can
 * implement the store without loading `openai`.
 */
import { Context, Effect, Layer, Option, Ref, Schema } from "effect"

/** What the store keeps of a submitted job (see `BatchJob.JobRecord`). */
export const JobRecord = Schema.Struct({
  batchId: Schema.String,
  inputFileId: Schema.String,
  digest: Schema.String,
  items: Schema.NonNegativeInt,
  submittedAt: Schema.Number
})

export type JobRecord = typeof JobRecord.Type

/** The store of submitted jobs (see `BatchJob.BatchJobStore`). */
export class BatchJobStore extends Context.Tag("effect-llm-resilience/BatchJobStore")<BatchJobStore, {
  readonly get: (key: string) => Effect.Effect<Option.Option<JobRecord>>
  readonly claim: (key: string, record: JobRecord) => Effect.Effect<JobRecord>
}>() {}

/** The memory store (see `BatchJob.layerStoreMemory`). */
export const layerStoreMemory: Layer.Layer<BatchJobStore> = Layer.effect(
  BatchJobStore,
  Effect.map(Ref.make(new Map<string, JobRecord>()), (ref) => ({
    get: (key) => Effect.map(Ref.get(ref), (records) => Option.fromNullable(records.get(key))),
    claim: (key, record) =>
      Ref.modify(ref, (records) => {
        const held = records.get(key)
        if (held !== undefined) return [held, records]
        return [record, new Map(records).set(key, record)]
      })
  }))
)
