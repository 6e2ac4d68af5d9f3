import { Either, ParseResult, Schema } from "effect"
import type OpenAI from "openai"
import { ChatChunk, type ChatMessage, type ChatRequest, ChatResponse, type Usage } from "../Llm.js"
import { BadRequest, ContentFiltered, MalformedResponse, type ModelFailure, StreamTruncated } from "../LlmError.js"

/** Which body field carries `maxTokens`. */
export type MaxTokensParam = "max_tokens" | "max_completion_tokens"

type Body = OpenAI.Chat.ChatCompletionCreateParamsNonStreaming
type MessageParam = OpenAI.Chat.ChatCompletionMessageParam

const toMessage = (message: ChatMessage): MessageParam => {
  const name = message.name === undefined ? {} : { name: message.name }
  switch (message.role) {
    case "system":
      return { role: "system", content: message.content, ...name }
    case "user":
      return { role: "user", content: message.content, ...name }
    case "tool":
      return { role: "tool", content: message.content, tool_call_id: message.toolCallId ?? "" }
    case "assistant": {
      const calls = message.toolCalls
      if (calls === undefined || calls.length === 0) return { role: "assistant", content: message.content, ...name }
      return {
        role: "assistant",
        content: message.content === "" ? null : message.content,
        ...name,
        tool_calls: calls.map((call) => ({
          id: call.id,
          type: "function" as const,
          function: { name: call.name, arguments: call.arguments }
        }))
      }
    }
  }
}

const toResponseFormat = (format: NonNullable<ChatRequest["responseFormat"]>): Body["response_format"] =>
  format.type === "json_schema"
    ? { type: "json_schema", json_schema: format.jsonSchema as unknown as OpenAI.ResponseFormatJSONSchema["json_schema"] }
    : { type: format.type }

const toToolChoice = (choice: NonNullable<ChatRequest["toolChoice"]>): Body["tool_choice"] =>
  typeof choice === "string" ? choice : { type: "function", function: { name: choice.name } }

/**
 * The Chat Completions body for a request. `metadata` and `idempotencyKey` are never sent in the body
 * (the key travels as an `Idempotency-Key` header).
 */
export const toBody = (request: ChatRequest, maxTokensParam: MaxTokensParam): Body => {
  const body: Body = { model: request.model, messages: request.messages.map(toMessage) }
  if (request.maxTokens !== undefined) body[maxTokensParam] = request.maxTokens
  if (request.temperature !== undefined) body.temperature = request.temperature
  if (request.topP !== undefined) body.top_p = request.topP
  if (request.seed !== undefined) body.seed = request.seed
  if (request.stop !== undefined) body.stop = [...request.stop]
  if (request.presencePenalty !== undefined) body.presence_penalty = request.presencePenalty
  if (request.frequencyPenalty !== undefined) body.frequency_penalty = request.frequencyPenalty
  if (request.responseFormat !== undefined) body.response_format = toResponseFormat(request.responseFormat)
  if (request.tools !== undefined) {
    body.tools = request.tools.map((tool) => ({
      type: "function" as const,
      function: {
        name: tool.name,
        ...(tool.description === undefined ? {} : { description: tool.description }),
        ...(tool.parameters === undefined ? {} : { parameters: { ...tool.parameters } })
      }
    }))
  }
  if (request.toolChoice !== undefined) body.tool_choice = toToolChoice(request.toolChoice)
  if (request.user !== undefined) body.user = request.user
  return body
}

// What fetch's Headers refuses (CR, LF, NUL or a character beyond Latin-1). Sent anyway, it throws a TypeError
// that reads as a network failure, which would be retried for ever in vain.
export const invalidHeaderValue = /[\0\r\n]|[^\0-\u00ff]/

/** Why a request cannot be sent at all (an idempotency key that cannot travel as a header), if it cannot. */
export const unsendable = (request: ChatRequest): ModelFailure | undefined =>
  request.idempotencyKey !== undefined && invalidHeaderValue.test(request.idempotencyKey)
    ? new BadRequest({
      model: request.model,
      param: "idempotencyKey",
      reason: "not a valid HTTP header value (CR, LF, NUL or a character beyond Latin-1)"
    })
    : undefined

// A detail count may be missing, null or odd (OpenAI-compatible servers vary): only a number is read, and a body is
// never refused for its details. Each is a part of its whole, never extra.
const Count = Schema.optional(Schema.Unknown)

const UsageBody = Schema.Struct({
  prompt_tokens: Schema.Number,
  completion_tokens: Schema.Number,
  prompt_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({ cached_tokens: Count }))),
  completion_tokens_details: Schema.optional(Schema.NullOr(Schema.Struct({ reasoning_tokens: Count })))
})

const CompletionBody = Schema.Struct({
  id: Schema.optional(Schema.NullOr(Schema.String)),
  model: Schema.optional(Schema.NullOr(Schema.String)),
  choices: Schema.NonEmptyArray(Schema.Struct({
    message: Schema.Struct({
      content: Schema.optional(Schema.NullOr(Schema.String)),
      tool_calls: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
        id: Schema.String,
        function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
      }))))
    }),
    finish_reason: Schema.optional(Schema.NullOr(Schema.String))
  })),
  usage: Schema.optional(Schema.NullOr(UsageBody))
})

const decodeCompletion = Schema.decodeUnknownEither(CompletionBody, { errors: "all" })

// Only the failing paths: the parse messages quote actual values, which may be completion text.
const failingPaths = (error: ParseResult.ParseError): string => {
  const paths = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => issue.path.join(".") || "(root)")
  return `missing or invalid field(s): ${[...new Set(paths)].join(", ")}`
}

const tokens = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.round(n) : 0)

/** The parts of a usage (cached input, reasoning output), each set only when positive and capped at its whole. */
export const withParts = (usage: Usage, cached: unknown, reasoning: unknown): Usage => {
  const cachedInputTokens = typeof cached === "number" ? Math.min(tokens(cached), usage.inputTokens) : 0
  const reasoningTokens = typeof reasoning === "number" ? Math.min(tokens(reasoning), usage.outputTokens) : 0
  return {
    ...usage,
    ...(cachedInputTokens > 0 ? { cachedInputTokens } : {}),
    ...(reasoningTokens > 0 ? { reasoningTokens } : {})
  }
}

interface UsageLike {
  readonly prompt_tokens: number
  readonly completion_tokens: number
  readonly prompt_tokens_details?: { readonly cached_tokens?: unknown } | null | undefined
  readonly completion_tokens_details?: { readonly reasoning_tokens?: unknown } | null | undefined
}

/**
 * Usage from a body; a body without usage counts 0 / 0 (some OpenAI-compatible servers omit it). Cached prompt
 * tokens and reasoning tokens are parts of the prompt and completion counts, as OpenAI reports them.
 */
export const toUsage = (usage: UsageLike | null | undefined): Usage =>
  usage == null
    ? { inputTokens: 0, outputTokens: 0 }
    : withParts(
      { inputTokens: tokens(usage.prompt_tokens), outputTokens: tokens(usage.completion_tokens) },
      usage.prompt_tokens_details?.cached_tokens,
      usage.completion_tokens_details?.reasoning_tokens
    )

/**
 * Decodes a chat.completion body. A body without `choices[0].message` is MalformedResponse; a
 * `content_filter` finish reason is ContentFiltered.
 */
export const fromCompletion = (body: unknown, model: string): Either.Either<ChatResponse, ModelFailure> =>
  Either.match(decodeCompletion(body), {
    onLeft: (error) => Either.left(new MalformedResponse({ model, reason: failingPaths(error) })),
    onRight: (decoded) => {
      const choice = decoded.choices[0]
      const finishReason = choice.finish_reason ?? "stop"
      if (finishReason === "content_filter") return Either.left(new ContentFiltered({ model }))
      const calls = choice.message.tool_calls ?? []
      return Either.right(
        new ChatResponse({
          id: decoded.id ?? "",
          model: decoded.model ?? model,
          content: choice.message.content ?? "",
          finishReason,
          usage: toUsage(decoded.usage),
          servedFrom: "provider",
          ...(calls.length === 0
            ? {}
            : { toolCalls: calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })) })
        })
      )
    }
  })

/**
 * The state of one stream: chunks are emitted as deltas arrive; the chunk with a finish reason is held back
 * until the stream ends, so the usage chunk that follows it (with `stream_options.include_usage`) can be
 * attached to it.
 */
export interface StreamState {
  received: number
  final: { content: string; finishReason: string } | undefined
  usage: Usage | undefined
  model: string
  /** Tool calls assembled from their deltas, by index (an id and a name arrive first, the arguments in pieces). */
  toolCalls?: Array<{ id: string; name: string; arguments: string }> | undefined
}

// Some OpenAI-compatible servers omit a delta's `index`: a delta with a new id then starts the next call, and one
// without continues the last call (indexing the array with `undefined` would drop the call silently).
const toolCallIndex = (
  calls: ReadonlyArray<{ id: string } | undefined>,
  delta: OpenAI.Chat.ChatCompletionChunk.Choice.Delta.ToolCall
): number => {
  const index: unknown = delta.index
  if (typeof index === "number" && Number.isSafeInteger(index) && index >= 0) return index
  const last = calls.length - 1
  if (last < 0) return 0
  return delta.id && calls[last] !== undefined && calls[last].id !== "" && calls[last].id !== delta.id ? last + 1 : last
}

const addToolCallDeltas = (
  state: StreamState,
  deltas: ReadonlyArray<OpenAI.Chat.ChatCompletionChunk.Choice.Delta.ToolCall> | null | undefined
): void => {
  if (deltas == null) return
  for (const delta of deltas) {
    const calls = (state.toolCalls ??= [])
    const call = (calls[toolCallIndex(calls, delta)] ??= { id: "", name: "", arguments: "" })
    if (delta.id) call.id = delta.id
    if (delta.function?.name) call.name += delta.function.name
    if (delta.function?.arguments) call.arguments += delta.function.arguments
  }
}

/** What to do with one SDK chunk: emit a ChatChunk, or nothing (held back or usage-only). */
export const onChunk = (state: StreamState, chunk: OpenAI.Chat.ChatCompletionChunk): ChatChunk | undefined => {
  if (typeof chunk.model === "string" && chunk.model.length > 0) state.model = chunk.model
  if (chunk.usage != null) state.usage = toUsage(chunk.usage)
  const choice = chunk.choices?.[0]
  if (choice === undefined) return undefined
  const content = choice.delta?.content ?? ""
  const toolDeltas = choice.delta?.tool_calls
  addToolCallDeltas(state, toolDeltas)
  if (state.final !== undefined) {
    state.final.content += content
    return undefined
  }
  if (choice.finish_reason != null) {
    state.final = { content, finishReason: choice.finish_reason }
    return undefined
  }
  // A delta with neither text nor a tool-call piece (OpenAI's opening `{ role: "assistant", content: "" }`, a
  // keep-alive) carries nothing of the answer: it is not emitted. A tool-call piece is emitted as an empty chunk
  // (the call itself arrives whole on the last chunk) so idle deadlines see the stream moving.
  if (content.length === 0 && (toolDeltas == null || toolDeltas.length === 0)) return undefined
  state.received++
  return new ChatChunk({ content, model: state.model, servedFrom: "provider" })
}

/** The last chunk (finish reason + usage), or the error the end of the stream means. */
export const onEnd = (state: StreamState, requestModel: string): Either.Either<ChatChunk, ModelFailure> => {
  if (state.final === undefined) return Either.left(truncated(state, requestModel))
  if (state.final.finishReason === "content_filter") return Either.left(new ContentFiltered({ model: requestModel }))
  return Either.right(
    new ChatChunk({
      content: state.final.content,
      model: state.model,
      finishReason: state.final.finishReason,
      servedFrom: "provider",
      ...(state.usage === undefined ? {} : { usage: state.usage }),
      ...(state.toolCalls === undefined ? {} : { toolCalls: state.toolCalls.filter((c) => c !== undefined) })
    })
  )
}

/** The stream ended (or its connection broke) before a finish reason. */
export const truncated = (state: StreamState, requestModel: string): ModelFailure =>
  new StreamTruncated({ model: requestModel, receivedChunks: state.received })
