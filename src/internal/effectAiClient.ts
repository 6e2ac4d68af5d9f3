/**
 * Down: an `LlmClient` over a `LanguageModel` service. Each call is one `generateText` (or `generateObject` for a
 * JSON format) or `streamText`, with the request's settings in the provider's config, its tools as a toolkit whose
 * calls are returned (never run), and every `AiError` mapped to an LlmError.
 */
import type * as AiError from "@effect/ai/AiError"
import type * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Response from "@effect/ai/Response"
import { Clock, Effect, Either, Option, Stream } from "effect"
import type { ChatChunk, ChatRequest, ChatResponse } from "../Llm.js"
import { make as makeClient, type ProviderOptions, type Service } from "../LlmClient.js"
import type { LlmError } from "../LlmError.js"
import * as Errors from "./effectAiErrors.js"
import { type Generation, toGeneration, type Tools, withProviderConfig } from "./effectAiPrompt.js"
import * as Mapping from "./effectAiResponse.js"

/** Wraps one call with provider settings (a `withConfigOverride` of a provider the bridge does not know). */
export type Configure = (request: ChatRequest) => <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** The resolved options of one bridge. */
export interface Options {
  /** Send the request's model to the provider ("request") or keep the LanguageModel layer's own ("layer"). */
  readonly model: "request" | "layer"
  readonly configure: Configure | undefined
}

const configured = (request: ChatRequest, options: Options) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> => {
  // The user's settings apply inside the built-in ones, so theirs win where both set a field.
  const inner = options.configure === undefined ? effect : options.configure(request)(effect)
  return withProviderConfig(request, options.model === "request")(inner)
}

const mapped = (error: AiError.AiError, request: ChatRequest, phase: Errors.Phase, receivedChunks: number) =>
  Effect.flatMap(
    Clock.currentTimeMillis,
    (nowMillis) => Effect.fail(Errors.toLlmError(error, { model: request.model, nowMillis, phase, receivedChunks }))
  )

const generate = (
  model: LanguageModel.Service,
  generation: Generation
): Effect.Effect<ReadonlyArray<Response.Part<Tools>>, AiError.AiError> => {
  const common = {
    prompt: generation.prompt,
    toolkit: generation.toolkit,
    toolChoice: generation.toolChoice,
    disableToolCallResolution: true as const
  }
  const response = generation.format === undefined
    ? model.generateText(common)
    : model.generateObject({ ...common, schema: generation.format.schema, objectName: generation.format.objectName })
  return Effect.map(response, (r) => r.content)
}

// One generateText / generateObject call, its errors mapped.
const answer = (
  model: LanguageModel.Service,
  options: Options,
  request: ChatRequest,
  generation: Generation
): Effect.Effect<ChatResponse, LlmError> =>
  generate(model, generation).pipe(
    configured(request, options),
    Effect.catchAll((error) => mapped(error, request, "request", 0)),
    Effect.flatMap((parts) => Mapping.toChatResponse(parts, request.model))
  )

const completeWith = (model: LanguageModel.Service, options: Options) =>
(request: ChatRequest): Effect.Effect<ChatResponse, LlmError> =>
  Either.match(toGeneration(request), {
    onLeft: (error) => Effect.fail(error),
    onRight: (generation) => answer(model, options, request, generation)
  })

const chunksOf = (
  parts: Stream.Stream<Response.StreamPart<Tools>, AiError.AiError>,
  request: ChatRequest
): Stream.Stream<ChatChunk, LlmError> =>
  Stream.suspend(() => {
    const state = Mapping.makeStreamState(request.model)
    const context = (nowMillis: number): Errors.Context => ({
      model: request.model,
      nowMillis,
      phase: "stream",
      receivedChunks: state.received
    })
    const onPart = (part: Response.StreamPart<Tools>): Effect.Effect<Option.Option<ChatChunk>, LlmError> => {
      const outcome = Mapping.onStreamPart(state, part, request.model)
      switch (outcome._tag) {
        case "Emit":
          return Effect.succeed(Option.some(outcome.chunk))
        case "Skip":
          return Effect.succeedNone
        case "Fail":
          return Effect.fail(outcome.error)
        case "ErrorEvent":
          return Effect.fail(Errors.fromErrorPart(outcome.event, context(0)))
      }
    }
    const end = Stream.suspend(() => {
      const error = Mapping.onStreamEnd(state, request.model)
      return error === undefined ? Stream.empty : Stream.fail(error)
    })
    return parts.pipe(
      // After the finish part the text is complete: a broken connection then loses nothing.
      Stream.catchAll((error) =>
        state.finished
          ? Stream.empty
          : Stream.fromEffect(Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.fail(Errors.toLlmError(error, context(now)))))
      ),
      Stream.mapEffect(onPart),
      Stream.filterMap((chunk) => chunk),
      Stream.concat(end)
    )
  })

const streamed = (
  model: LanguageModel.Service,
  options: Options,
  request: ChatRequest,
  generation: Generation
): Stream.Stream<Response.StreamPart<Tools>, AiError.AiError> => {
  const parts = model.streamText({
    prompt: generation.prompt,
    toolkit: generation.toolkit,
    toolChoice: generation.toolChoice,
    disableToolCallResolution: true as const
  })
  // The provider reads its config when the stream starts: the configured context is captured, then provided.
  return Stream.unwrap(
    Effect.map(configured(request, options)(Effect.context<never>()), (context) => Stream.provideContext(parts, context))
  )
}

const streamWith = (model: LanguageModel.Service, options: Options) =>
(request: ChatRequest): Stream.Stream<ChatChunk, LlmError> =>
  Either.match(toGeneration(request), {
    onLeft: (error) => Stream.fail(error),
    // `streamText` has no JSON format: such a request is answered whole, as one last chunk.
    onRight: (generation) => generation.format !== undefined
      ? Stream.fromEffect(Effect.map(answer(model, options, request, generation), Mapping.asChunk))
      : chunksOf(streamed(model, options, request, generation), request)
  })

/**
 * The LlmClient service over one LanguageModel service. Its metrics and spans are every provider's, recorded by
 * `LlmClient.make` (the one place), under the provider's name.
 */
export const make = (model: LanguageModel.Service, options: Options, telemetry: ProviderOptions): Service =>
  makeClient({ complete: completeWith(model, options), stream: streamWith(model, options) }, telemetry)
