/**
 * Down: what a `LanguageModel` answers, as this library's `ChatResponse` and `ChatChunk`s. The model is the one the
 * provider's response metadata names (the model that actually answered), else the one asked for.
 */
import type * as Response from "@effect/ai/Response"
import { Either, Option } from "effect"
import { ChatChunk, ChatResponse, type ToolCall, type Usage } from "../Llm.js"
import { ContentFiltered, type ModelFailure, StreamTruncated } from "../LlmError.js"
import type { Tools } from "./effectAiPrompt.js"

/** `@effect/ai`'s finish reasons in this library's (OpenAI) spelling; the others pass through as they are. */
export const finishReasonOf = (reason: Response.FinishReason): string => {
  switch (reason) {
    case "tool-calls":
      return "tool_calls"
    case "content-filter":
      return "content_filter"
    default:
      return reason
  }
}

const tokens = (n: number | undefined): number => (n !== undefined && Number.isFinite(n) && n > 0 ? Math.round(n) : 0)

const count = (record: unknown, key: string): number => {
  const value = typeof record === "object" && record !== null ? (record as Record<string, unknown>)[key] : undefined
  return typeof value === "number" ? tokens(value) : 0
}

// Anthropic's `input_tokens` leaves out the prompt tokens read from or written to the cache (OpenAI's includes
// them): the whole prompt is their sum, which `@effect/ai-anthropic` keeps in the finish part's metadata.
const anthropicUsage = (metadata: unknown): object | undefined => {
  const anthropic = typeof metadata === "object" && metadata !== null ? (metadata as Record<string, unknown>).anthropic : undefined
  const usage = typeof anthropic === "object" && anthropic !== null ? (anthropic as Record<string, unknown>).usage : undefined
  return typeof usage === "object" && usage !== null ? usage : undefined
}

const anthropicPrompt = (usage: object | undefined): number | undefined =>
  usage === undefined
    ? undefined
    : count(usage, "input_tokens") + count(usage, "cache_read_input_tokens") + count(usage, "cache_creation_input_tokens")

/**
 * Usage from a finish part; missing counts are 0, as in the OpenAI adapter. Cached input, cache writes and reasoning
 * tokens are parts of the input and output counts (OpenAI's reading; an Anthropic prompt is made whole first, and
 * its `cache_creation_input_tokens`, which `@effect/ai` keeps only in the provider metadata, are the cache writes).
 */
export const usageOf = (usage: Response.Usage | undefined, metadata?: unknown): Usage => {
  const cached = tokens(usage?.cachedInputTokens)
  const anthropic = anthropicUsage(metadata)
  const inputTokens = anthropicPrompt(anthropic) ?? tokens(usage?.inputTokens)
  const written = anthropic === undefined ? 0 : Math.min(count(anthropic, "cache_creation_input_tokens"), inputTokens - Math.min(cached, inputTokens))
  const outputTokens = tokens(usage?.outputTokens)
  const reasoning = Math.min(tokens(usage?.reasoningTokens), outputTokens)
  return {
    inputTokens,
    outputTokens,
    ...(cached > 0 ? { cachedInputTokens: Math.min(cached, inputTokens) } : {}),
    ...(written > 0 ? { cacheWriteInputTokens: written } : {}),
    ...(reasoning > 0 ? { reasoningTokens: reasoning } : {})
  }
}

const toolCallOf = (part: { readonly id: string; readonly name: string; readonly params: unknown }): ToolCall => ({
  id: part.id,
  name: part.name,
  arguments: JSON.stringify(part.params ?? {})
})

/**
 * The response of `generateText` / `generateObject`: text parts joined, tool calls (not run by the provider) with
 * their parameters as JSON text, the finish part's reason and usage. A `content-filter` finish is ContentFiltered.
 */
export const toChatResponse = (
  parts: ReadonlyArray<Response.Part<Tools>>,
  model: string
): Either.Either<ChatResponse, ModelFailure> => {
  let content = ""
  let id = ""
  let answeredBy = model
  let finish: Response.FinishPart | undefined
  const toolCalls: Array<ToolCall> = []
  for (const part of parts) {
    switch (part.type) {
      case "text":
        content += part.text
        break
      case "tool-call":
        if (!part.providerExecuted) toolCalls.push(toolCallOf(part))
        break
      case "response-metadata":
        id = Option.getOrElse(part.id, () => id)
        answeredBy = Option.getOrElse(part.modelId, () => answeredBy)
        break
      case "finish":
        finish = part
        break
    }
  }
  if (finish?.reason === "content-filter") return Either.left(new ContentFiltered({ model }))
  return Either.right(
    new ChatResponse({
      id,
      model: answeredBy,
      content,
      finishReason: finish === undefined ? "stop" : finishReasonOf(finish.reason),
      usage: usageOf(finish?.usage, finish?.metadata),
      servedFrom: "provider",
      ...(toolCalls.length === 0 ? {} : { toolCalls })
    })
  )
}

/** What one stream has seen so far. */
export interface StreamState {
  /** Chunks emitted. */
  received: number
  model: string
  readonly toolCalls: Array<ToolCall>
  /** Set once the finish part arrived: the text is complete. */
  finished: boolean
}

export const makeStreamState = (model: string): StreamState => ({
  received: 0,
  model,
  toolCalls: [],
  finished: false
})

/** What to do with one stream part: emit a chunk, fail, or nothing. */
export type PartOutcome =
  | { readonly _tag: "Emit"; readonly chunk: ChatChunk }
  | { readonly _tag: "Fail"; readonly error: ModelFailure }
  | { readonly _tag: "Skip" }
  | { readonly _tag: "ErrorEvent"; readonly event: unknown }

const skip: PartOutcome = { _tag: "Skip" }

/**
 * One stream part: a non-empty text delta is a chunk (an empty opening delta is none); tool calls are kept for the
 * last chunk, which the finish part makes (reason, usage, tool calls). Parts after the finish are ignored.
 */
export const onStreamPart = (state: StreamState, part: Response.StreamPart<Tools>, requestModel: string): PartOutcome => {
  if (state.finished) return skip
  switch (part.type) {
    case "response-metadata":
      state.model = Option.getOrElse(part.modelId, () => state.model)
      return skip
    case "text-delta": {
      if (part.delta === "") return skip
      state.received++
      return { _tag: "Emit", chunk: new ChatChunk({ content: part.delta, model: state.model, servedFrom: "provider" }) }
    }
    case "tool-call":
      if (!part.providerExecuted) state.toolCalls.push(toolCallOf(part))
      return skip
    case "error":
      return { _tag: "ErrorEvent", event: part.error }
    case "finish": {
      state.finished = true
      if (part.reason === "content-filter") return { _tag: "Fail", error: new ContentFiltered({ model: requestModel }) }
      return {
        _tag: "Emit",
        chunk: new ChatChunk({
          content: "",
          model: state.model,
          finishReason: finishReasonOf(part.reason),
          usage: usageOf(part.usage, part.metadata),
          servedFrom: "provider",
          ...(state.toolCalls.length === 0 ? {} : { toolCalls: state.toolCalls })
        })
      }
    }
    default:
      return skip
  }
}

/** The stream ended: before its finish part, that is a truncation. */
export const onStreamEnd = (state: StreamState, requestModel: string): ModelFailure | undefined =>
  state.finished ? undefined : new StreamTruncated({ model: requestModel, receivedChunks: state.received })

/** A whole response as the one last chunk of a stream. */
export const asChunk = (response: ChatResponse): ChatChunk =>
  new ChatChunk({
    content: response.content,
    model: response.model,
    finishReason: response.finishReason,
    usage: response.usage,
    servedFrom: response.servedFrom,
    ...(response.toolCalls === undefined ? {} : { toolCalls: response.toolCalls })
  })
