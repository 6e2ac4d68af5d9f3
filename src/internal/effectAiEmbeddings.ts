/**
 * The bridge's embeddings: an `@effect/ai` `EmbeddingModel` as this library's `Embeddings` service. `embedMany` gets
 * the request's texts (vectors in input order); `AiError`s become LlmErrors as the completion calls' do. An
 * `EmbeddingModel` reports no usage: it answers 0 input tokens, which the provider step (`Embeddings.make`) replaces
 * by the exact count, marked `estimated`.
 */
import type * as EmbeddingModel from "@effect/ai/EmbeddingModel"
import { Clock, Effect } from "effect"
import { EmbedResponse, type Service } from "../Embeddings.js"
import { MalformedResponse } from "../LlmError.js"
import { toLlmError } from "./effectAiErrors.js"

/** The Embeddings service over one `EmbeddingModel` (the layer's model answers; `request.model` names it). */
export const make = (model: EmbeddingModel.Service): Service => ({
  embed: (request) =>
    model.embedMany(request.input).pipe(
      Effect.catchAll((error) =>
        Effect.flatMap(Clock.currentTimeMillis, (nowMillis) =>
          Effect.fail(toLlmError(error, { model: request.model, nowMillis, phase: "request", receivedChunks: 0 })))),
      Effect.flatMap((vectors) =>
        vectors.length === request.input.length
          ? Effect.succeed(new EmbedResponse({
            model: request.model,
            embeddings: vectors,
            usage: { inputTokens: 0 }
          }))
          : Effect.fail(new MalformedResponse({ model: request.model, reason: "the provider sent a vector count other than the inputs'" })))
    )
})
