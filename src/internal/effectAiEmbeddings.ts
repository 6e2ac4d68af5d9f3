/**
 * The bridge's embeddings: an `@effect/ai` `EmbeddingModel` as this library's `Embeddings` service. `embedMany` gets
 * the request's texts (vectors in input order); `AiError`s become LlmErrors as the completion calls' do. An
 * `EmbeddingModel` reports no usage, so the input tokens are counted (≈ 4 characters a token), marked `estimated`.
 */
import type * as EmbeddingModel from "@effect/ai/EmbeddingModel"
import { Clock, Effect } from "effect"
import { EmbedResponse, type Service } from "../Embeddings.js"
import { MalformedResponse } from "../LlmError.js"
import { approximateTokens } from "./approximateTokens.js"
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
            usage: {
              inputTokens: request.input.reduce((sum, text) => sum + Math.max(1, approximateTokens(text)), 0),
              estimated: true
            }
          }))
          : Effect.fail(new MalformedResponse({ model: request.model, reason: "the provider sent a vector count other than the inputs'" })))
    )
})
