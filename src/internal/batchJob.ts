/**
 * The core of a batch job, over a narrow transport (upload a file, create / retrieve / cancel a batch, read a file):
 * submit once per key (the store remembers the batch id, so a restart resumes polling), poll on the Effect clock
 * until the batch ends, and map the output and error files back by `custom_id` to one `Exit` per request.
 */
import { Duration, Effect, Either, Exit, Option, Schedule, Schema } from "effect"
import { createHash } from "node:crypto"
import type { ChatRequest, ChatResponse, Usage } from "../Llm.js"
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

/** The provider calls a job makes; each fails with the adapter's typed errors. */
export interface Transport {
  readonly upload: (jsonl: string) => Effect.Effect<string, ModelFailure>
  readonly create: (inputFileId: string, metadata: Readonly<Record<string, string>>) => Effect.Effect<RemoteBatch, ModelFailure>
  readonly retrieve: (batchId: string) => Effect.Effect<RemoteBatch, ModelFailure>
  readonly cancel: (batchId: string) => Effect.Effect<RemoteBatch, ModelFailure>
  readonly content: (fileId: string) => Effect.Effect<string, ModelFailure>
  /** A request's line body (the adapter's request mapping). */
  readonly body: (request: ChatRequest) => unknown
  /** A 200 line's body as a response, or the error it means. */
  readonly decode: (body: unknown, model: string) => Either.Either<ChatResponse, ModelFailure>
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

/** The JSONL input file: one chat completion line per request, `custom_id` by index. */
export const inputFile = (transport: Transport, requests: ReadonlyArray<ChatRequest>): string =>
  requests.map((request, i) =>
    JSON.stringify({ custom_id: customId(i), method: "POST", url: "/v1/chat/completions", body: transport.body(request) })
  ).join("\n") + "\n"

/** A digest of the input file: the same key with other requests is a conflict, not a resumption. */
export const digestOf = (jsonl: string): string => createHash("sha256").update(jsonl).digest("hex")

const OutputLine = Schema.parseJson(Schema.Struct({
  custom_id: Schema.String,
  response: Schema.optional(Schema.NullOr(Schema.Struct({ status_code: Schema.Number, body: Schema.optional(Schema.Unknown) }))),
  error: Schema.optional(Schema.NullOr(Schema.Struct({ code: Schema.optional(Schema.NullOr(Schema.String)) })))
}))

/** Why an item has no answer: not run before the batch expired or was cancelled, or missing from the files. */
export type NotRunReason = "expired" | "cancelled" | "missing"

/** One line's outcome, before it is placed by index. */
export type LineOutcome =
  | { readonly _tag: "answer"; readonly response: ChatResponse }
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

const lineOutcome = (
  transport: Transport,
  line: typeof OutputLine.Type,
  model: string
): LineOutcome => {
  const response = line.response
  if (response != null) {
    if (response.status_code === 200) {
      return Either.match(transport.decode(response.body, model), {
        onLeft: (error): LineOutcome => ({ _tag: "failure", error }),
        onRight: (answer): LineOutcome => ({ _tag: "answer", response: answer })
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
export const collect = (
  transport: Transport,
  requests: ReadonlyArray<ChatRequest>,
  files: ReadonlyArray<string>,
  status: string
): ReadonlyArray<LineOutcome> => {
  const outcomes: Array<LineOutcome | undefined> = requests.map(() => undefined)
  for (const file of files) {
    for (const text of file.split("\n")) {
      if (text.trim() === "") continue
      const line = Schema.decodeUnknownOption(OutputLine)(text)
      if (Option.isNone(line)) continue
      const index = indexOf(line.value.custom_id, requests.length)
      if (index === undefined || outcomes[index] !== undefined) continue
      outcomes[index] = lineOutcome(transport, line.value, requests[index].model)
    }
  }
  const missing: NotRunReason = status === "expired" ? "expired" : status === "cancelled" ? "cancelled" : "missing"
  return outcomes.map((o) => o ?? { _tag: "notRun", reason: missing })
}

/** Submits the job unless the store knows its key; the record of the batch that serves it. */
export const submit = <E>(
  transport: Transport,
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
    const batch = yield* transport.create(inputFileId, metadata)
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
export const poll = (transport: Transport, batchId: string, interval: Duration.Duration): Effect.Effect<RemoteBatch, ModelFailure> =>
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

/** The job's totals: the answers' usage and their cost at batch prices (`none` when a model is not priced). */
export const totals = (answers: ReadonlyArray<ChatResponse>) =>
  Effect.map(Pricing.current, (pricing) => {
    let usage: { inputTokens: number; outputTokens: number; cachedInputTokens: number } = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0 }
    let cost: Option.Option<number> = Option.some(0)
    for (const answer of answers) {
      usage = {
        inputTokens: usage.inputTokens + answer.usage.inputTokens,
        outputTokens: usage.outputTokens + answer.usage.outputTokens,
        cachedInputTokens: usage.cachedInputTokens + (answer.usage.cachedInputTokens ?? 0)
      }
      cost = Option.zipWith(cost, pricing.batchCost(answer.model, answer.usage), (a, b) => a + b)
    }
    const { cachedInputTokens, ...counts } = usage
    const total: Usage = cachedInputTokens > 0 ? { ...counts, cachedInputTokens } : counts
    return { usage: total, costUsd: cost }
  })

/** An item's exit from its outcome. */
export const exitOf = <E>(outcome: LineOutcome, notRun: (reason: NotRunReason) => E): Exit.Exit<ChatResponse, ModelFailure | E> => {
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
