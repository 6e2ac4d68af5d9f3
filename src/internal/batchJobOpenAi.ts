/**
 * The batch job's transport over the `openai` SDK: `files.create` (purpose `batch`), `batches.create` (the chat
 * completions endpoint, a 24 h window), `batches.retrieve`, `batches.cancel` and `files.content`. Every failure is
 * classified as the OpenAI adapter classifies it.
 */
import { Clock, Effect } from "effect"
import OpenAI, { toFile } from "openai"
import type { ModelFailure } from "../LlmError.js"
import type { RemoteBatch, Transport } from "./batchJob.js"
import * as Errors from "./openaiErrors.js"
import * as Mapping from "./openaiMapping.js"

const call = <A>(model: string, run: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, ModelFailure> =>
  Effect.tryPromise({ try: run, catch: (error) => error }).pipe(
    Effect.catchAll((error) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(Errors.fromUnknown(error, model, now))))
  )

const remote = (batch: OpenAI.Batches.Batch): RemoteBatch => ({
  id: batch.id,
  status: batch.status,
  outputFileId: batch.output_file_id,
  errorFileId: batch.error_file_id,
  errorCodes: (batch.errors?.data ?? []).flatMap((e) => (typeof e.code === "string" ? [e.code] : []))
})

/** The transport of one SDK client; `model` names the job's errors (the first request's model). */
export const transport = (client: OpenAI, model: string, maxTokensParam: Mapping.MaxTokensParam): Transport => ({
  upload: (jsonl) =>
    call(model, async (signal) => {
      const file = await client.files.create(
        { file: await toFile(Buffer.from(jsonl, "utf8"), "batch.jsonl", { type: "application/jsonl" }), purpose: "batch" },
        { signal }
      )
      return file.id
    }),
  create: (inputFileId, metadata) =>
    Effect.map(
      call(model, (signal) =>
        client.batches.create(
          { input_file_id: inputFileId, endpoint: "/v1/chat/completions", completion_window: "24h", metadata: { ...metadata } },
          { signal }
        )),
      remote
    ),
  retrieve: (batchId) => Effect.map(call(model, (signal) => client.batches.retrieve(batchId, { signal })), remote),
  cancel: (batchId) => Effect.map(call(model, (signal) => client.batches.cancel(batchId, { signal })), remote),
  content: (fileId) => call(model, async (signal) => (await client.files.content(fileId, { signal })).text()),
  body: (request) => Mapping.toBody(request, maxTokensParam),
  decode: (body, answerModel) => Mapping.fromCompletion(body, answerModel)
})
