/**
 * The core of a batch job, over a narrow transport (upload a file, create / retrieve / cancel a batch, read a file):
 * submit once per key (the store remembers the batch id, so a restart resumes polling), poll on the Effect clock
 * until the batch ends, and map the output and error files back by `custom_id` to one `Exit` per request.
 */
import { Duration, Effect, Either, Exit, Option, Schedule, Schema } from "effect"
import { createHash } from "node:crypto"
import type { Usage } from "../Llm.js"
import { isRetryable, type ModelFailure } from "../LlmError.js"
import * as Pricing from "../Pricing.js"
import { fromStatus } from "./providerErrors.js"

/** A batch as the provider reports it (only the fields the job reads). */
export interface RemoteBatch {
  readonly id: string
  readonly status: string
  readonly outputFileId?: string | null | undefined
  readonly errorFileId?: string | null | undefined
  readonly errorCodes?: ReadonlyArray<string> | undefined
}

/** What a job's requests have in common (a `ChatRequest`, an `EmbedRequest`). */
export interface AnyRequest {
  readonly model: string
}

/** What a job's answers have in common (a `ChatResponse`, an `EmbedResponse`). */
export interface AnyResponse {
  readonly model: string
  readonly usage: { readonly inputTokens: number; readonly outputTokens?: number; readonly cachedInputTokens?: number | undefined }
}

/**
 * The provider calls a job makes, for one endpoint (every line of a batch goes to the same one); each fails with
 * the adapter's typed errors.
 */
export interface Transport<Req extends AnyRequest, Res extends AnyResponse> {
  /** The endpoint of every line: `/v1/chat/completions` or `/v1/embeddings`. */
  readonly url: string
  readonly upload: (jsonl: string) => Effect.Effect<string, ModelFailure>
  readonly create: (inputFileId: string, metadata: Readonly<Record<string, string>>) => Effect.Effect<RemoteBatch, ModelFailure>
  readonly retrieve: (batchId: string) => Effect.Effect<RemoteBatch, ModelFailure>
  readonly cancel: (batchId: string) => Effect.Effect<RemoteBatch, ModelFailure>
  readonly content: (fileId: string) => Effect.Effect<string, ModelFailure>
  /** A request's line body (the adapter's request mapping). */
  readonly body: (request: Req) => unknown
  /** A 200 line's body as the response to `request`, or the error it means. */
  readonly decode: (body: unknown, request: Req) => Either.Either<Res, ModelFailure>
}

/** What the store keeps of a submitted job. */
export interface JobRecord {
  readonly batchId: string
  readonly inputFileId: string
  readonly digest: string
  readonly items: number
  readonly submittedAt: number
}

/** The store operations the core needs (one atomic operation each). */
export interface Store {
  readonly get: (key: string) => Effect.Effect<Option.Option<JobRecord>>
  /** Stores `record` under `key` unless one is there; returns the one stored. */
  readonly claim: (key: string, record: JobRecord) => Effect.Effect<JobRecord>
}

/** The statuses after which a batch changes no more. */
export const terminal: ReadonlySet<string> = new Set(["completed", "expired", "cancelled", "failed"])

/** The `custom_id` of the request at `index`. */
export const customId = (index: number): string => `item-${index}`

const indexOf = (id: string, items: number): number | undefined => {
  const match = /^item-(\d+)$/.exec(id)
  if (match === null) return undefined
  const index = Number(match[1])
  return index < items ? index : undefined
}

/** The JSONL input file: one line per request to the transport's endpoint, `custom_id` by index. */
export const inputFile = <Req extends AnyRequest, Res extends AnyResponse>(
  transport: Transport<Req, Res>,
  requests: ReadonlyArray<Req>
): string =>
  requests.map((request, i) =>
    JSON.stringify({ custom_id: customId(i), method: "POST", url: transport.url, body: transport.body(request) })
  ).join("\n") + "\n"

/** A digest of the input file: the same key with other requests is a conflict, not a resumption. */
export const digestOf = (jsonl: string): string => createHash("sha256").update(jsonl).digest("hex")

/**
 * The metadata every batch of a job carries beside the caller's (two of the 16 pairs OpenAI allows): the SHA-256 of
 * the job's key and of its input file. The Batch API has no idempotency key, so these are how a batch created just
 * before a crash (before the store had its id) is found again with `batches.list` (docs/batch-job.md).
 */
export const jobMetadata = (key: string, digest: string): Readonly<Record<string, string>> => ({
  batch_job_key: createHash("sha256").update(key).digest("hex"),
  batch_job_input: digest
})

const OutputLine = Schema.parseJson(Schema.Struct({
  custom_id: Schema.String,
  response: Schema.optional(Schema.NullOr(Schema.Struct({ status_code: Schema.Number, body: Schema.optional(Schema.Unknown) }))),
  error: Schema.optional(Schema.NullOr(Schema.Struct({ code: Schema.optional(Schema.NullOr(Schema.String)) })))
}))

/** Why an item has no answer: not run before the batch expired or was cancelled, or missing from the files. */
export type NotRunReason = "expired" | "cancelled" | "missing"

/** One line's outcome, before it is placed by index. */
export type LineOutcome<Res> =
  | { readonly _tag: "answer"; readonly response: Res }
  | { readonly _tag: "failure"; readonly error: ModelFailure }
  | { readonly _tag: "notRun"; readonly reason: NotRunReason }

const errorFields = (body: unknown): { code?: string; type?: string; param?: string } => {
  const error = typeof body === "object" && body !== null ? (body as { error?: unknown }).error : undefined
  if (typeof error !== "object" || error === null) return {}
  const pick = (key: string) => {
    const value = (error as Record<string, unknown>)[key]
    return typeof value === "string" ? value : undefined
  }
  return { code: pick("code"), type: pick("type"), param: pick("param") }
}

const lineOutcome = <Req extends AnyRequest, Res extends AnyResponse>(
  transport: Transport<Req, Res>,
  line: typeof OutputLine.Type,
  request: Req
): LineOutcome<Res> => {
  const response = line.response
  const model = request.model
  if (response != null) {
    if (response.status_code === 200) {
      return Either.match(transport.decode(response.body, request), {
        onLeft: (error): LineOutcome<Res> => ({ _tag: "failure", error }),
        onRight: (answer): LineOutcome<Res> => ({ _tag: "answer", response: answer })
      })
    }
    return { _tag: "failure", error: fromStatus({ status: response.status_code, ...errorFields(response.body) }, model) }
  }
  const code = line.error?.code
  if (code === "batch_expired") return { _tag: "notRun", reason: "expired" }
  if (code === "batch_cancelled") return { _tag: "notRun", reason: "cancelled" }
  return { _tag: "failure", error: fromStatus({ status: 400, code }, model) }
}

/** Places every line of the output and error files by `custom_id`; an item with no line is not run. */
export const collect = <Req extends AnyRequest, Res extends AnyResponse>(
  transport: Transport<Req, Res>,
  requests: ReadonlyArray<Req>,
  files: ReadonlyArray<string>,
  status: string
): ReadonlyArray<LineOutcome<Res>> => {
  const outcomes: Array<LineOutcome<Res> | undefined> = requests.map(() => undefined)
  for (const file of files) {
    for (const text of file.split("\n")) {
      if (text.trim() === "") continue
      const line = Schema.decodeUnknownOption(OutputLine)(text)
      if (Option.isNone(line)) continue
      const index = indexOf(line.value.custom_id, requests.length)
      if (index === undefined || outcomes[index] !== undefined) continue
      outcomes[index] = lineOutcome(transport, line.value, requests[index])
    }
  }
  const missing: NotRunReason = status === "expired" ? "expired" : status === "cancelled" ? "cancelled" : "missing"
  return outcomes.map((o) => o ?? { _tag: "notRun", reason: missing })
}

/** Submits the job unless the store knows its key; the record of the batch that serves it. */
export const submit = <E, Req extends AnyRequest, Res extends AnyResponse>(
  transport: Transport<Req, Res>,
  store: Store,
  key: string,
  jsonl: string,
  items: number,
  metadata: Readonly<Record<string, string>>,
  now: number,
  conflict: (key: string) => E
): Effect.Effect<JobRecord, ModelFailure | E> =>
  Effect.gen(function*() {
    const digest = digestOf(jsonl)
    const known = yield* store.get(key)
    if (Option.isSome(known)) {
      return known.value.digest === digest ? known.value : yield* Effect.fail(conflict(key))
    }
    const inputFileId = yield* transport.upload(jsonl)
    const batch = yield* transport.create(inputFileId, { ...metadata, ...jobMetadata(key, digest) })
    const record = yield* store.claim(key, { batchId: batch.id, inputFileId, digest, items, submittedAt: now })
    // Another process claimed the key first: its batch serves the job, this one is cancelled.
    if (record.batchId !== batch.id) yield* Effect.ignore(transport.cancel(batch.id))
    return record
  })

/**
 * Polls until the batch ends: at once, then every `interval` on the Effect clock. A retryable failure of one
 * retrieval (a 5xx, a reset connection) waits for the next poll instead of ending a job that may run for hours; any
 * other (a revoked key, a batch that is gone) ends the job with that error.
 */
export const poll = <Req extends AnyRequest, Res extends AnyResponse>(transport: Transport<Req, Res>, batchId: string, interval: Duration.Duration): Effect.Effect<RemoteBatch, ModelFailure> =>
  Effect.gen(function*() {
    const driver = yield* Schedule.driver(Schedule.spaced(interval))
    while (true) {
      const batch = yield* transport.retrieve(batchId).pipe(
        Effect.map(Option.some),
        Effect.catchIf(isRetryable, () => Effect.succeed(Option.none<RemoteBatch>()))
      )
      if (Option.isSome(batch) && terminal.has(batch.value.status)) return batch.value
      yield* Effect.orDie(driver.next(undefined))
    }
  })

/**
 * The job's totals: the answers' usage and their cost at batch prices (`none` when a model is not priced). An
 * embedding has no output tokens.
 */
export const totals = (answers: ReadonlyArray<AnyResponse>) =>
  Effect.map(Pricing.current, (pricing) => {
    let usage: { inputTokens: number; outputTokens: number; cachedInputTokens: number } = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0 }
    let cost: Option.Option<number> = Option.some(0)
    for (const answer of answers) {
      const outputTokens = answer.usage.outputTokens ?? 0
      usage = {
        inputTokens: usage.inputTokens + answer.usage.inputTokens,
        outputTokens: usage.outputTokens + outputTokens,
        cachedInputTokens: usage.cachedInputTokens + (answer.usage.cachedInputTokens ?? 0)
      }
      cost = Option.zipWith(cost, pricing.batchCost(answer.model, { ...answer.usage, outputTokens }), (a, b) => a + b)
    }
    const { cachedInputTokens, ...counts } = usage
    const total: Usage = cachedInputTokens > 0 ? { ...counts, cachedInputTokens } : counts
    return { usage: total, costUsd: cost }
  })

/** An item's exit from its outcome. */
export const exitOf = <Res, E>(outcome: LineOutcome<Res>, notRun: (reason: NotRunReason) => E): Exit.Exit<Res, ModelFailure | E> => {
  switch (outcome._tag) {
    case "answer":
      return Exit.succeed(outcome.response)
    case "failure":
      return Exit.fail(outcome.error)
    case "notRun":
      return Exit.fail(notRun(outcome.reason))
  }
}

/** The poll interval when none is given. */
export const defaultPollInterval = Duration.seconds(30)
