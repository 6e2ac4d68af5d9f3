/**
 * The ChaosServer's OpenAI Files and Batch API: `POST /v1/files` (multipart upload), `GET /v1/files/:id` and
 * `/v1/files/:id/content`, `POST /v1/batches`, `GET /v1/batches/:id`, `POST /v1/batches/:id/cancel`. A batch runs
 * its chat completion or embeddings lines (answered as `/v1/chat/completions` or `/v1/embeddings` would, without
 * faults or the prompt cache) once its
 * `completionTime` has passed on the server's clock, and writes an output file (the 200 lines) and an error file
 * (the failed lines). The settings pick which `custom_id`s fail and whether the batch expires part way.
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Duration, Effect, Either, Option, Schema } from "effect"
import { chat, invalidRequest } from "./chaosChat.js"
import { turnOf } from "./chaosCall.js"
import { embeddings, responseBody as embeddingsBody } from "./chaosEmbeddings.js"
import type { StoredBatch, StoredFile } from "./chaosBatchState.js"
import type { ChaosState } from "./chaosState.js"

const notFound = (what: string) =>
  HttpServerResponse.unsafeJson(
    { error: { message: `No such ${what}`, type: "invalid_request_error", param: null, code: null } },
    { status: 404 }
  )

const seconds = (ms: number) => Math.floor(ms / 1000)

const fileObject = (file: StoredFile) => ({
  id: file.id,
  object: "file",
  bytes: Buffer.byteLength(file.content),
  created_at: seconds(file.createdAt),
  filename: file.filename,
  purpose: file.purpose,
  status: "processed"
})

const batchObject = (batch: StoredBatch) => ({
  id: batch.id,
  object: "batch",
  endpoint: batch.endpoint,
  errors: null,
  input_file_id: batch.inputFileId,
  completion_window: batch.completionWindow,
  status: batch.status,
  output_file_id: batch.outputFileId ?? null,
  error_file_id: batch.errorFileId ?? null,
  created_at: seconds(batch.createdAt),
  in_progress_at: seconds(batch.createdAt),
  expires_at: seconds(batch.createdAt) + 86_400,
  completed_at: batch.status === "completed" ? seconds(batch.finishedAt ?? 0) : null,
  expired_at: batch.status === "expired" ? seconds(batch.finishedAt ?? 0) : null,
  cancelling_at: batch.cancellingAt === undefined ? null : seconds(batch.cancellingAt),
  cancelled_at: batch.status === "cancelled" ? seconds(batch.finishedAt ?? 0) : null,
  failed_at: null,
  request_counts: { total: batch.total, completed: batch.completed, failed: batch.failed },
  metadata: batch.metadata
})

/** `POST /v1/files`: a multipart body with `file` and `purpose`. */
export const createFile = (state: ChaosState) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const contentType = request.headers["content-type"] ?? ""
    const body = yield* Effect.either(request.arrayBuffer)
    if (Either.isLeft(body)) return invalidRequest("The body could not be read", null)
    const form = yield* Effect.either(Effect.tryPromise(() =>
      new Response(body.right, { headers: { "content-type": contentType } }).formData()
    ))
    if (Either.isLeft(form)) return invalidRequest("Expected a multipart/form-data body", null)
    const file = form.right.get("file")
    const purpose = form.right.get("purpose")
    if (typeof file === "string" || file === null) return invalidRequest("Missing file", "file")
    if (typeof purpose !== "string") return invalidRequest("Missing purpose", "purpose")
    const content = yield* Effect.promise(() => file.text())
    const now = yield* Clock.currentTimeMillis
    const stored: StoredFile = { id: state.batch.id("file"), filename: file.name, purpose, createdAt: now, content }
    state.batch.files.set(stored.id, stored)
    state.batch.counters.filesCreated++
    return HttpServerResponse.unsafeJson(fileObject(stored))
  })

const withParam = <A>(name: string, f: (value: string) => Effect.Effect<A>) =>
  Effect.flatMap(HttpRouter.params, (params) => f(params[name] ?? ""))

/** `GET /v1/files/:id`. */
export const retrieveFile = (state: ChaosState) =>
  withParam("id", (id) =>
    Effect.succeed(Option.match(Option.fromNullable(state.batch.files.get(id)), {
      onNone: () => notFound("file"),
      onSome: (file) => HttpServerResponse.unsafeJson(fileObject(file))
    })))

/** `GET /v1/files/:id/content`. */
export const fileContent = (state: ChaosState) =>
  withParam("id", (id) =>
    Effect.sync(() => {
      const file = state.batch.files.get(id)
      if (file === undefined) return notFound("file")
      state.batch.counters.fileContentsRead++
      return HttpServerResponse.text(file.content, { contentType: "application/octet-stream" })
    }))

const CreateBatch = Schema.Struct({
  input_file_id: Schema.NonEmptyString,
  endpoint: Schema.Literal("/v1/chat/completions", "/v1/embeddings"),
  completion_window: Schema.Literal("24h"),
  metadata: Schema.optional(Schema.NullOr(Schema.Record({ key: Schema.String, value: Schema.String })))
})

/** `POST /v1/batches`. */
export const createBatch = (state: ChaosState) =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest.HttpServerRequest
    const raw = yield* Effect.either(request.json)
    if (Either.isLeft(raw)) return invalidRequest("The body is not valid JSON", null)
    const body = Schema.decodeUnknownEither(CreateBatch)(raw.right)
    if (Either.isLeft(body)) return invalidRequest("Invalid batch: input_file_id, endpoint or completion_window", null)
    const file = state.batch.files.get(body.right.input_file_id)
    if (file === undefined) return notFound("file")
    const now = yield* Clock.currentTimeMillis
    const batch: StoredBatch = {
      id: state.batch.id("batch"),
      inputFileId: file.id,
      endpoint: body.right.endpoint,
      completionWindow: body.right.completion_window,
      metadata: body.right.metadata ?? null,
      createdAt: now,
      status: "in_progress",
      total: file.content.split("\n").filter((line) => line.trim() !== "").length,
      completed: 0,
      failed: 0,
      outputFileId: undefined,
      errorFileId: undefined,
      finishedAt: undefined,
      cancellingAt: undefined
    }
    state.batch.batches.set(batch.id, batch)
    state.batch.counters.batchesCreated++
    return HttpServerResponse.unsafeJson(batchObject(batch))
  })

const errorLine = (id: string, customId: string, status: number, code: string) => ({
  id,
  custom_id: customId,
  response: {
    status_code: status,
    request_id: `req_${id}`,
    body: { error: { message: `Injected batch item failure (${status})`, type: status >= 500 ? "server_error" : "invalid_request_error", param: null, code } }
  },
  error: null
})

const okLine = (id: string, customId: string, body: unknown) => ({
  id,
  custom_id: customId,
  response: { status_code: 200, request_id: `req_${id}`, body },
  error: null
})

const embeddingsLine = (id: string, customId: string, body: unknown) => {
  const decoded = Schema.decodeUnknownEither(embeddings.schema)(body)
  if (Either.isLeft(decoded)) return { ok: false as const, line: errorLine(id, customId, 400, "invalid_request") }
  return { ok: true as const, line: okLine(id, customId, embeddingsBody(decoded.right.model, decoded.right)) }
}

const answerLine = (state: ChaosState, batch: StoredBatch, id: string, customId: string, body: unknown, now: number) => {
  if (batch.endpoint === "/v1/embeddings") return embeddingsLine(id, customId, body)
  const decoded = Schema.decodeUnknownEither(chat.schema)(body)
  if (Either.isLeft(decoded)) return { ok: false as const, line: errorLine(id, customId, 400, "invalid_request") }
  const turn = turnOf(state, chat.question(decoded.right), false, `call_${id}`)
  const [prompt, completion] = turn._tag === "text"
    ? [turn.answer.promptTokens, turn.answer.completionTokens]
    : [turn.promptTokens, turn._tag === "tool" ? turn.completionTokens : 0]
  const message = turn._tag === "tool"
    ? { role: "assistant", content: null, refusal: null, tool_calls: [{ id: turn.id, type: "function", function: { name: turn.name, arguments: turn.arguments } }] }
    : { role: "assistant", content: turn._tag === "text" ? turn.answer.content : "", refusal: null }
  const finish = turn._tag === "text" ? turn.answer.finishReason : turn._tag === "tool" ? "tool_calls" : "content_filter"
  return {
    ok: true as const,
    line: {
      id,
      custom_id: customId,
      response: {
        status_code: 200,
        request_id: `req_${id}`,
        body: {
          id: `chatcmpl-${id}`,
          object: "chat.completion",
          created: seconds(now),
          model: decoded.right.model,
          choices: [{ index: 0, message, logprobs: null, finish_reason: finish }],
          usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
        }
      },
      error: null
    }
  }
}

const Line = Schema.parseJson(Schema.Struct({ custom_id: Schema.String, body: Schema.Unknown }))

const storeFile = (state: ChaosState, lines: ReadonlyArray<unknown>, now: number): string | undefined => {
  if (lines.length === 0) return undefined
  const file: StoredFile = {
    id: state.batch.id("file"),
    filename: "batch_output.jsonl",
    purpose: "batch_output",
    createdAt: now,
    content: lines.map((line) => JSON.stringify(line)).join("\n") + "\n"
  }
  state.batch.files.set(file.id, file)
  return file.id
}

// Runs the lines of a batch whose time has come: the first `limit` are answered (or fail as configured), the rest,
// when the batch expires, are `batch_expired` error lines.
const finish = (state: ChaosState, batch: StoredBatch, now: number, outcome: "completed" | "expired" | "cancelled") => {
  const input = state.batch.files.get(batch.inputFileId)?.content ?? ""
  const lines = input.split("\n").filter((line) => line.trim() !== "")
  const limit = outcome === "cancelled" ? 0 : outcome === "expired" ? state.batch.settings.expireAfterItems ?? 0 : lines.length
  const output: Array<unknown> = []
  const errors: Array<unknown> = []
  lines.forEach((text, i) => {
    const id = `batch_req_${batch.id}_${i}`
    const parsed = Schema.decodeUnknownEither(Line)(text)
    const customId = Either.isRight(parsed) ? parsed.right.custom_id : `line-${i}`
    if (i >= limit) {
      if (outcome === "expired") errors.push({ id, custom_id: customId, response: null, error: { code: "batch_expired", message: "This request could not be executed before the completion window expired." } })
      return
    }
    if (Either.isLeft(parsed)) return void errors.push(errorLine(id, customId, 400, "invalid_request"))
    if (state.batch.settings.failCustomIds.has(customId)) {
      return void errors.push(errorLine(id, customId, state.batch.settings.failStatus, "server_error"))
    }
    const answer = answerLine(state, batch, id, customId, parsed.right.body, now)
    ;(answer.ok ? output : errors).push(answer.line)
  })
  batch.status = outcome
  batch.completed = output.length
  batch.failed = errors.length
  batch.outputFileId = storeFile(state, output, now)
  batch.errorFileId = storeFile(state, errors, now)
  batch.finishedAt = now
}

const advance = (state: ChaosState, batch: StoredBatch, now: number): void => {
  if (batch.status === "cancelling") return finish(state, batch, now, "cancelled")
  if (batch.status !== "in_progress") return
  if (now < batch.createdAt + Duration.toMillis(state.batch.settings.completionTime)) return
  finish(state, batch, now, state.batch.settings.expireAfterItems === undefined ? "completed" : "expired")
}

/** `GET /v1/batches/:id`: the batch, moved on to its end once its time has come. */
export const retrieveBatch = (state: ChaosState) =>
  withParam("id", (id) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const batch = state.batch.batches.get(id)
      if (batch === undefined) return notFound("batch")
      state.batch.counters.batchesRetrieved++
      advance(state, batch, now)
      return HttpServerResponse.unsafeJson(batchObject(batch))
    }))

/** `POST /v1/batches/:id/cancel`: `cancelling` now, `cancelled` (nothing run) at the next retrieval. */
export const cancelBatch = (state: ChaosState) =>
  withParam("id", (id) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const batch = state.batch.batches.get(id)
      if (batch === undefined) return notFound("batch")
      advance(state, batch, now)
      if (batch.status === "in_progress") {
        state.batch.counters.batchesCancelled++
        batch.status = "cancelling"
        batch.cancellingAt = now
      }
      return HttpServerResponse.unsafeJson(batchObject(batch))
    }))
