/**
 * Bulk work through OpenAI's Batch API, at batch prices (half the synchronous ones): many `ChatRequest`s (or
 * `Embeddings.EmbedRequest`s, with `runEmbeddings`) go up as one JSONL file (`files.create`), run as one batch (`batches.create`), are polled on the Effect clock until the batch
 * ends, and come back as one typed `Exit` per request, in the order given — an answer, the request's own failure
 * (the provider's status, classified as every call is), or `BatchItemNotRun` for a line the batch never ran (it
 * expired or was cancelled first).
 *
 * A job has a `key`. The `BatchJobStore` remembers which batch serves a key, so a process that restarts and runs the
 * same job again resumes polling that batch: nothing is uploaded or created twice. Interrupting `run` stops polling
 * only (the batch goes on at the provider); `cancel(key)` cancels it.
 *
 * Imported from the subpath `effect-llm-resilience/BatchJob` (it loads `openai`), so the core never loads the SDK.
 *
 * @since 0.1.0
 */
import { Clock, Config, Context, Duration, Effect, Either, Exit, Layer, Option, Redacted, Schema } from "effect"
import type { ConfigError } from "effect/ConfigError"
import OpenAI from "openai"
import { InvalidOptions } from "./InvalidOptions.js"
import { ChatRequest, type ChatResponse, type Usage } from "./Llm.js"
import type { ModelFailure } from "./LlmError.js"
import { EmbedRequest, type EmbedResponse } from "./Embeddings.js"
import * as Core from "./internal/batchJob.js"
import * as Store from "./internal/batchJobStore.js"
import { chatEndpoint, embeddingsEndpoint, type Endpoint, transport } from "./internal/batchJobOpenAi.js"
import type { MaxTokensParam } from "./internal/openaiMapping.js"
import { PositiveDuration } from "./internal/optionSchemas.js"

/**
 * A request of the job that the batch never ran: it `"expired"` (the batch's window ended first), was
 * `"cancelled"`, or is `"missing"` from the output and error files.
 *
 * @example
 * ```ts
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const error = new BatchJob.BatchItemNotRun({ index: 3, model: "gpt-4o-mini", reason: "expired" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class BatchItemNotRun extends Schema.TaggedError<BatchItemNotRun>("effect-llm-resilience/BatchItemNotRun")(
  "BatchItemNotRun",
  { index: Schema.Int, model: Schema.String, reason: Schema.Literal("expired", "cancelled", "missing") }
) {}

/**
 * The job `key` is already bound to a batch of other requests: a key names one set of requests for good.
 *
 * @example
 * ```ts
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const error = new BatchJob.BatchJobConflict({ key: "nightly-2026-12-02" })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class BatchJobConflict extends Schema.TaggedError<BatchJobConflict>("effect-llm-resilience/BatchJobConflict")(
  "BatchJobConflict",
  { key: Schema.String }
) {}

/**
 * The batch as a whole failed (the provider refused its input file, e.g. a line over the size limit): `codes` are the
 * provider's error codes.
 *
 * @example
 * ```ts
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const error = new BatchJob.BatchJobFailed({ batchId: "batch_1", codes: ["invalid_request"] })
 * ```
 * @since 0.1.0
 * @category Errors
 */
export class BatchJobFailed extends Schema.TaggedError<BatchJobFailed>("effect-llm-resilience/BatchJobFailed")(
  "BatchJobFailed",
  { batchId: Schema.String, codes: Schema.Array(Schema.String) }
) {}

/**
 * Why one item of a job has no answer: its request failed (a `ModelFailure`, as a synchronous call would) or the
 * batch never ran it.
 *
 * @example
 * ```ts
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const retryLater = (e: BatchJob.ItemError) => e._tag === "BatchItemNotRun" || e._tag === "ServerError"
 * ```
 * @since 0.1.0
 * @category Errors
 */
export type ItemError = ModelFailure | BatchItemNotRun

/**
 * Why a whole job failed: uploading, creating or polling failed for good (a `ModelFailure`), the key is bound to
 * other requests, the batch failed, or the spec is invalid.
 *
 * @example
 * ```ts
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const tag = (e: BatchJob.JobError) => e._tag
 * ```
 * @since 0.1.0
 * @category Errors
 */
export type JobError = ModelFailure | BatchJobConflict | BatchJobFailed | InvalidOptions

/**
 * What the store keeps of a submitted job: the batch id (what a restart resumes), the input file, a digest of the
 * requests (a key reused with other requests is a conflict) and when it was submitted (ms, Effect clock).
 *
 * @example
 * ```ts
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const record: BatchJob.JobRecord = { batchId: "batch_1", inputFileId: "file_1", digest: "ab12", items: 500, submittedAt: 0 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const JobRecord = Store.JobRecord

/**
 * @since 0.1.0
 * @category Models
 */
export type JobRecord = Store.JobRecord

/**
 * The store of submitted jobs: `get` reads a key's record, `claim` stores one unless the key has one (atomically)
 * and returns the record that holds. Provide {@link layerStoreMemory}, or `Redis.layerBatchJobStore` so another
 * process can resume the job.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const known = Effect.flatMap(BatchJob.BatchJobStore, (store) => store.get("nightly"))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export const BatchJobStore = Store.BatchJobStore

/**
 * @since 0.1.0
 * @category Tags
 */
export type BatchJobStore = Store.BatchJobStore

/**
 * A `BatchJobStore` in memory (one process: a restart of the fiber resumes, a restart of the process does not).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const Stores = BatchJob.layerStoreMemory
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerStoreMemory: Layer.Layer<BatchJobStore> = Store.layerStoreMemory

/**
 * One job: its `key`, its requests, how often to poll and metadata for the batch.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const spec: BatchJob.Spec = {
 *   key: "classify-2026-12-02",
 *   requests: [new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Classify: refund" }] })],
 *   pollInterval: "1 minute"
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Spec {
  /** Names the job for good: a second run with the same key resumes (or re-reads) its batch. Required. */
  readonly key: string
  /** The requests, at least one. The results come back in this order. Required. */
  readonly requests: ReadonlyArray<ChatRequest>
  /** The time between two polls, on the Effect clock. Defaults to 30 seconds. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Metadata sent with the batch (at most 16 string pairs at OpenAI). Defaults to none. */
  readonly metadata?: Readonly<Record<string, string>> | undefined
}

/**
 * A job of embeddings: as {@link Spec}, with `Embeddings.EmbedRequest`s (each line one `/v1/embeddings` request;
 * a batch holds one kind of line).
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const spec: BatchJob.EmbeddingsSpec = {
 *   key: "index-docs-2026-12-02",
 *   requests: [new Embeddings.EmbedRequest({ model: "text-embedding-3-small", input: ["refund policy", "shipping"] })]
 * }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface EmbeddingsSpec extends Omit<Spec, "requests"> {
  /** The requests, at least one (each may hold several texts). The results come back in this order. Required. */
  readonly requests: ReadonlyArray<EmbedRequest>
}

const specSchema = <A>(constructor: new(...args: ReadonlyArray<never>) => A, name: string) =>
  Schema.Struct({
    key: Schema.NonEmptyString,
    requests: Schema.NonEmptyArray(Schema.instanceOf(constructor, { message: () => `Expected a ${name}` })),
    pollInterval: Schema.optionalWith(PositiveDuration, { exact: true }),
    metadata: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.String }), { exact: true })
  })

const ChatSpec = specSchema(ChatRequest, "Llm.ChatRequest")
const EmbeddingsSpecSchema = specSchema(EmbedRequest, "Embeddings.EmbedRequest")

/**
 * What a job returns: the batch's id and final status, one `Exit` per request (in order), the counts, the answers'
 * summed usage and their cost at batch prices (`Option.none()` when a model is not in the price table). `A` is
 * `ChatResponse` for {@link Service.run} and `Embeddings.EmbedResponse` for `runEmbeddings` (no output tokens).
 *
 * @example
 * ```ts
 * import { Exit } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const answers = (result: BatchJob.Result) => result.results.filter(Exit.isSuccess).map((e) => e.value.content)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Result<A = ChatResponse> {
  readonly batchId: string
  readonly status: "completed" | "expired" | "cancelled"
  readonly results: ReadonlyArray<Exit.Exit<A, ItemError>>
  readonly succeeded: number
  readonly failed: number
  readonly usage: Usage
  readonly costUsd: Option.Option<number>
}

/**
 * A batch job runner.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const succeeded = (jobs: BatchJob.Service, spec: BatchJob.Spec) => Effect.map(jobs.run(spec), (r) => r.succeeded)
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Service {
  /** Submits the job (or resumes the batch its key is bound to), waits for the batch to end, maps the results. */
  readonly run: (spec: Spec) => Effect.Effect<Result, JobError>
  /** {@link Service.run} for embeddings: `/v1/embeddings` lines, vectors mapped back by `custom_id`. */
  readonly runEmbeddings: (spec: EmbeddingsSpec) => Effect.Effect<Result<EmbedResponse>, JobError>
  /** Cancels the batch bound to `key` (a run polling it then returns its `cancelled` results); no-op for an unknown key. */
  readonly cancel: (key: string) => Effect.Effect<void, ModelFailure>
}

/**
 * The BatchJob service tag.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const program = Effect.flatMap(BatchJob.BatchJob, (jobs) => jobs.cancel("nightly"))
 * ```
 * @since 0.1.0
 * @category Tags
 */
export class BatchJob extends Context.Tag("effect-llm-resilience/BatchJob")<BatchJob, Service>() {}

/**
 * Options of {@link make} and {@link layer}.
 *
 * @example
 * ```ts
 * import { Redacted } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const options: BatchJob.Options = { apiKey: Redacted.make("sk-..."), baseURL: "http://127.0.0.1:8787/v1" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Options {
  /** The API key, kept `Redacted`. Required. */
  readonly apiKey: Redacted.Redacted<string>
  /** The API root. Defaults to the SDK's (`OPENAI_BASE_URL` or api.openai.com). */
  readonly baseURL?: string | undefined
  /** Sent as `OpenAI-Organization`. Defaults to the SDK's. */
  readonly organization?: string | undefined
  /** Sent as `OpenAI-Project`. Defaults to the SDK's. */
  readonly project?: string | undefined
  /** The body field that carries `maxTokens`, as in `OpenAi.Options`. Defaults to `"max_tokens"`. */
  readonly maxTokensParam?: MaxTokensParam | undefined
}

const OptionsSchema = Schema.Struct({
  baseURL: Schema.optionalWith(
    Schema.String.pipe(Schema.filter((s) => URL.canParse(s), { message: () => "Expected an absolute URL" })),
    { exact: true }
  ),
  organization: Schema.optionalWith(Schema.String, { exact: true }),
  project: Schema.optionalWith(Schema.String, { exact: true }),
  maxTokensParam: Schema.optionalWith(Schema.Literal("max_tokens", "max_completion_tokens"), { exact: true })
})

// The key is checked by hand: a Schema issue would print the actual value, i.e. the key itself.
const validate = (options: Options): Either.Either<typeof OptionsSchema.Type, InvalidOptions> => {
  const { apiKey, ...rest } = options
  const keyIssues = Redacted.isRedacted(apiKey) ? [] : [{ path: "apiKey", message: "Expected a Redacted<string>" }]
  const given = Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== undefined))
  const decoded = Schema.decodeUnknownEither(OptionsSchema, { errors: "all", onExcessProperty: "error" })(given)
  if (Either.isRight(decoded) && keyIssues.length === 0) return Either.right(decoded.right)
  const schemaIssues = Either.isLeft(decoded) ? InvalidOptions.fromParseError("BatchJob", decoded.left).issues : []
  return Either.left(new InvalidOptions({ target: "BatchJob", issues: [...keyIssues, ...schemaIssues] }))
}

const decodeSpec = <A, I>(schema: Schema.Schema<A, I>, target: string, spec: object) =>
  Either.mapLeft(
    Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(
      Object.fromEntries(Object.entries(spec).filter(([, value]) => value !== undefined))
    ),
    (error) => InvalidOptions.fromParseError(target, error)
  )

const runWith = <Req extends Core.AnyRequest, Res extends Core.AnyResponse, I>(
  client: OpenAI,
  endpoint: Endpoint<Req, Res>,
  schema: Schema.Schema<{
    readonly key: string
    readonly requests: readonly [Req, ...Array<Req>]
    readonly pollInterval?: Duration.Duration
    readonly metadata?: { readonly [x: string]: string }
  }, I>,
  target: string,
  store: BatchJobStore["Type"]
) =>
(spec: Spec | EmbeddingsSpec): Effect.Effect<Result<Res>, JobError> =>
  Effect.gen(function*() {
    const valid = yield* decodeSpec(schema, target, spec)
    const requests = valid.requests
    const api = transport(client, requests[0].model, endpoint)
    const jsonl = Core.inputFile(api, requests)
    const now = yield* Clock.currentTimeMillis
    const record = yield* Core.submit(api, store, valid.key, jsonl, requests.length, valid.metadata ?? {}, now, (key) =>
      new BatchJobConflict({ key }))
    const batch = yield* Core.poll(api, record.batchId, valid.pollInterval ?? Core.defaultPollInterval)
    if (batch.status === "failed") {
      return yield* Effect.fail(new BatchJobFailed({ batchId: batch.id, codes: batch.errorCodes ?? [] }))
    }
    const fileIds = [batch.outputFileId, batch.errorFileId].filter((id): id is string => typeof id === "string" && id !== "")
    const files = yield* Effect.forEach(fileIds, api.content, { concurrency: 2 })
    const outcomes = Core.collect(api, requests, files, batch.status)
    const results = outcomes.map((outcome, index) =>
      Core.exitOf(outcome, (reason) => new BatchItemNotRun({ index, model: requests[index].model, reason })))
    const answers = outcomes.flatMap((o) => (o._tag === "answer" ? [o.response] : []))
    const { costUsd, usage } = yield* Core.totals(answers)
    return {
      batchId: batch.id,
      status: batch.status as Result<Res>["status"],
      results,
      succeeded: answers.length,
      failed: results.length - answers.length,
      usage,
      costUsd
    }
  }).pipe(Effect.withSpan("BatchJob.run", { attributes: { "batch.items": spec.requests.length } }))

const cancelWith = (client: OpenAI, store: BatchJobStore["Type"]) => (key: string) =>
  Effect.flatMap(store.get(key), Option.match({
    onNone: () => Effect.void,
    onSome: (record) => Effect.asVoid(transport(client, "batch", chatEndpoint("max_tokens")).cancel(record.batchId))
  }))

/**
 * Builds a batch job runner over the `openai` SDK (constructed with `maxRetries: 0`), on the `BatchJobStore` in
 * context. Fails with InvalidOptions listing every bad option (never quoting the key).
 *
 * @example
 * ```ts
 * import { Effect, Redacted } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const jobs = BatchJob.make({ apiKey: Redacted.make("sk-...") }).pipe(Effect.provide(BatchJob.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const make = (options: Options): Effect.Effect<Service, InvalidOptions, BatchJobStore> =>
  Effect.gen(function*() {
    const valid = yield* validate(options)
    const store = yield* BatchJobStore
    const client = new OpenAI({
      apiKey: Redacted.value(options.apiKey),
      baseURL: valid.baseURL,
      organization: valid.organization,
      project: valid.project,
      maxRetries: 0,
      // The SDK logs bodies it cannot parse, which may hold completion text.
      logLevel: "off"
    })
    return {
      run: runWith(client, chatEndpoint(valid.maxTokensParam ?? "max_tokens"), ChatSpec, "BatchJob.Spec", store),
      runEmbeddings: runWith(client, embeddingsEndpoint, EmbeddingsSpecSchema, "BatchJob.EmbeddingsSpec", store),
      cancel: cancelWith(client, store)
    }
  })

/**
 * {@link make} as a layer.
 *
 * @example
 * ```ts
 * import { Layer, Redacted } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const Live = BatchJob.layer({ apiKey: Redacted.make("sk-...") }).pipe(Layer.provide(BatchJob.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layer = (options: Options): Layer.Layer<BatchJob, InvalidOptions, BatchJobStore> =>
  Layer.effect(BatchJob, make(options))

/**
 * {@link layer} configured from the environment: `OPENAI_API_KEY` (required, `Config.redacted`) and
 * `OPENAI_BASE_URL` (optional).
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const Live = BatchJob.layerConfig().pipe(Layer.provide(BatchJob.layerStoreMemory))
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerConfig = (
  options: Omit<Options, "apiKey" | "baseURL"> = {}
): Layer.Layer<BatchJob, ConfigError | InvalidOptions, BatchJobStore> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({ apiKey: Config.redacted("OPENAI_API_KEY"), baseURL: Config.option(Config.string("OPENAI_BASE_URL")) }),
      ({ apiKey, baseURL }) => layer({ ...options, apiKey, baseURL: Option.getOrUndefined(baseURL) })
    )
  )

/**
 * Runs a job with the `BatchJob` in context.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const job = BatchJob.run({
 *   key: "nightly",
 *   requests: [new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Hello" }] })]
 * })
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const run = (spec: Spec): Effect.Effect<Result, JobError, BatchJob> =>
  Effect.flatMap(BatchJob, (jobs) => jobs.run(spec))

/**
 * Runs a job of embeddings with the `BatchJob` in context: one `/v1/embeddings` line per request, the vectors mapped
 * back by `custom_id`, the cost at the embedding model's batch price.
 *
 * @example
 * ```ts
 * import { Embeddings } from "effect-llm-resilience"
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const job = BatchJob.runEmbeddings({
 *   key: "index-docs",
 *   requests: [new Embeddings.EmbedRequest({ model: "text-embedding-3-small", input: ["refund policy"] })]
 * })
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const runEmbeddings = (spec: EmbeddingsSpec): Effect.Effect<Result<EmbedResponse>, JobError, BatchJob> =>
  Effect.flatMap(BatchJob, (jobs) => jobs.runEmbeddings(spec))

/**
 * Cancels the batch bound to `key` with the `BatchJob` in context.
 *
 * @example
 * ```ts
 * import * as BatchJob from "effect-llm-resilience/BatchJob"
 * const stop = BatchJob.cancel("nightly")
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const cancel = (key: string): Effect.Effect<void, ModelFailure, BatchJob> =>
  Effect.flatMap(BatchJob, (jobs) => jobs.cancel(key))
