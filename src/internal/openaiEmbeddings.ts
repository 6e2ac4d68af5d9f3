/**
 * The OpenAI adapter's embeddings: `embeddings.create` over the SDK (its default base64 transfer, decoded by the
 * SDK), the vectors placed by their `index`, errors classified as the chat calls' are.
 */
import { Clock, Effect, Either } from "effect"
import type OpenAI from "openai"
import { type EmbedRequest, EmbedResponse, type Service } from "../Embeddings.js"
import { MalformedResponse } from "../LlmError.js"
import * as Errors from "./openaiErrors.js"

const isVector = (value: unknown): value is ReadonlyArray<number> =>
  Array.isArray(value) && value.every((x) => typeof x === "number" && Number.isFinite(x))

/** Vectors by index, or why the body does not give one per input. */
const vectorsOf = (body: OpenAI.CreateEmbeddingResponse, count: number): ReadonlyArray<ReadonlyArray<number>> | string => {
  const data: ReadonlyArray<unknown> = Array.isArray(body?.data) ? body.data : []
  const vectors: Array<ReadonlyArray<number> | undefined> = Array.from({ length: count }, () => undefined)
  for (const item of data) {
    const { embedding, index } = (item ?? {}) as { readonly index?: unknown; readonly embedding?: unknown }
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= count) return "an embedding index out of range"
    if (!isVector(embedding)) return "an embedding that is not a list of numbers"
    if (vectors[index] !== undefined) return "two embeddings for one input"
    vectors[index] = embedding
  }
  return vectors.every((v) => v !== undefined) ? (vectors as ReadonlyArray<ReadonlyArray<number>>) : "an input without an embedding"
}

/** The Embeddings service of one SDK client. */
export const make = (client: OpenAI): Service => ({
  embed: (request) =>
    Effect.tryPromise({
      try: (signal) =>
        client.embeddings.create({
          model: request.model,
          input: [...request.input],
          ...(request.dimensions === undefined ? {} : { dimensions: request.dimensions }),
          ...(request.user === undefined ? {} : { user: request.user })
        }, { signal }),
      catch: (error) => error
    }).pipe(
      Effect.catchAll((error) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.fail(Errors.fromUnknown(error, request.model, now)))),
      Effect.flatMap((body) => fromBody(body, request))
    )
})

/** An embeddings body (float vectors) as the response to `request`, or MalformedResponse. */
export const fromBody = (body: OpenAI.CreateEmbeddingResponse, request: EmbedRequest): Either.Either<EmbedResponse, MalformedResponse> => {
  const vectors = vectorsOf(body, request.input.length)
  if (typeof vectors === "string") return Either.left(new MalformedResponse({ model: request.model, reason: vectors }))
  const tokens = body?.usage?.prompt_tokens
  return Either.right(new EmbedResponse({
    model: typeof body.model === "string" && body.model !== "" ? body.model : request.model,
    embeddings: vectors,
    usage: { inputTokens: typeof tokens === "number" && Number.isFinite(tokens) && tokens > 0 ? Math.round(tokens) : 0 }
  }))
}
