/**
 * The batch job's transport over the `openai` SDK: `files.create` (purpose `batch`), `batches.create` (the chat
 * completions or the embeddings endpoint, a 24 h window), `batches.retrieve`, `batches.cancel` and `files.content`. Every failure is
 * classified as the OpenAI adapter classifies it.
 */
import { Clock, Effect } from "effect"
import OpenAI, { toFile } from "openai"
import type { Either } from "effect"
import type { EmbedRequest, EmbedResponse } from "../Embeddings.js"
import type { ChatRequest, ChatResponse } from "../Llm.js"
import type { ModelFailure } from "../LlmError.js"
import type { AnyRequest, AnyResponse, RemoteBatch, Transport } from "./batchJob.js"
import { fromBody as embeddingsFromBody } from "./openaiEmbeddings.js"
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

/** Where a job's lines go and how their bodies map. */
export interface Endpoint<Req extends AnyRequest, Res extends AnyResponse> {
  readonly url: "/v1/chat/completions" | "/v1/embeddings"
  readonly body: (request: Req) => unknown
  readonly decode: (body: unknown, request: Req) => Either.Either<Res, ModelFailure>
}

/** Chat completion lines, mapped as the OpenAI adapter maps them. */
export const chatEndpoint = (maxTokensParam: Mapping.MaxTokensParam): Endpoint<ChatRequest, ChatResponse> => ({
  url: "/v1/chat/completions",
  body: (request) => Mapping.toBody(request, maxTokensParam),
  decode: (body, request) => Mapping.fromCompletion(body, request.model)
})

/** Embeddings lines: float vectors (a line's body is not decoded from base64 by the SDK), by index. */
export const embeddingsEndpoint: Endpoint<EmbedRequest, EmbedResponse> = {
  url: "/v1/embeddings",
  body: (request) => ({
    model: request.model,
    input: [...request.input],
    encoding_format: "float",
    ...(request.dimensions === undefined ? {} : { dimensions: request.dimensions }),
    ...(request.user === undefined ? {} : { user: request.user })
  }),
  decode: (body, request) => embeddingsFromBody(body as OpenAI.CreateEmbeddingResponse, request)
}

/** The transport of one SDK client for `endpoint`; `model` names the job's errors (the first request's model). */
export const transport = <Req extends AnyRequest, Res extends AnyResponse>(
  client: OpenAI,
  model: string,
  endpoint: Endpoint<Req, Res>
): Transport<Req, Res> => ({
  url: endpoint.url,
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
          { input_file_id: inputFileId, endpoint: endpoint.url, completion_window: "24h", metadata: { ...metadata } },
          { signal }
        )),
      remote
    ),
  retrieve: (batchId) => Effect.map(call(model, (signal) => client.batches.retrieve(batchId, { signal })), remote),
  cancel: (batchId) => Effect.map(call(model, (signal) => client.batches.cancel(batchId, { signal })), remote),
  content: (fileId) => call(model, async (signal) => (await client.files.content(fileId, { signal })).text()),
  body: endpoint.body,
  decode: endpoint.decode
})
