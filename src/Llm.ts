/**
 * The domain model: chat messages, requests, responses, stream chunks and token usage.
 *
 * Every type is a Schema, so requests decode from plain objects (with every failing path listed)
 * and responses serialize for caches and idempotency records across processes.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { InvalidOptions } from "./InvalidOptions.js"

/**
 * The author of a chat message.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const role: Llm.Role = "user"
 * ```
 * @since 0.1.0
 * @category Models
 */
export const Role = Schema.Literal("system", "user", "assistant", "tool")

/**
 * @since 0.1.0
 * @category Models
 */
export type Role = typeof Role.Type

/**
 * A tool call requested by the assistant (`arguments` is the JSON text the model produced).
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const call: Llm.ToolCall = { id: "call_1", name: "lookup", arguments: "{\"q\":\"x\"}" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const ToolCall = Schema.Struct({
  id: Schema.String,
  name: Schema.String,
  arguments: Schema.String
})

/**
 * @since 0.1.0
 * @category Models
 */
export type ToolCall = typeof ToolCall.Type

/**
 * One message of a conversation. `toolCalls` is set on an assistant message that calls tools;
 * `toolCallId` links a `tool` message to the call it answers.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const message: Llm.ChatMessage = { role: "user", content: "Hello" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const ChatMessage = Schema.Struct({
  role: Role,
  content: Schema.String,
  name: Schema.optional(Schema.String),
  toolCalls: Schema.optional(Schema.Array(ToolCall)),
  toolCallId: Schema.optional(Schema.String)
})

/**
 * @since 0.1.0
 * @category Models
 */
export type ChatMessage = typeof ChatMessage.Type

/**
 * A tool the model may call (`parameters` is a JSON Schema object).
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const tool: Llm.ToolDefinition = { name: "lookup", parameters: { type: "object" } }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const ToolDefinition = Schema.Struct({
  name: Schema.NonEmptyString,
  description: Schema.optional(Schema.String),
  parameters: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
})

/**
 * @since 0.1.0
 * @category Models
 */
export type ToolDefinition = typeof ToolDefinition.Type

/**
 * The output format the model must follow.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const format: Llm.ResponseFormat = { type: "json_object" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const ResponseFormat = Schema.Union(
  Schema.Struct({ type: Schema.Literal("text", "json_object") }),
  Schema.Struct({
    type: Schema.Literal("json_schema"),
    jsonSchema: Schema.Record({ key: Schema.String, value: Schema.Unknown })
  })
)

/**
 * @since 0.1.0
 * @category Models
 */
export type ResponseFormat = typeof ResponseFormat.Type

/**
 * How the model may use tools.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const choice: Llm.ToolChoice = { name: "lookup" }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const ToolChoice = Schema.Union(
  Schema.Literal("auto", "none", "required"),
  Schema.Struct({ name: Schema.String })
)

/**
 * @since 0.1.0
 * @category Models
 */
export type ToolChoice = typeof ToolChoice.Type

/**
 * A chat completion request. `user` is the end user or tenant id: it scopes budgets, cache entries and
 * idempotency keys. `idempotencyKey` makes retries of the same logical request safe. `metadata` is free-form
 * and never sent to the provider nor used in any cache key.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const request = new Llm.ChatRequest({
 *   model: "gpt-4o-mini",
 *   messages: [{ role: "user", content: "Write a haiku" }],
 *   maxTokens: 100,
 *   temperature: 0,
 *   user: "user-42"
 * })
 * ```
 * @since 0.1.0
 * @category Models
 */
export class ChatRequest extends Schema.Class<ChatRequest>("effect-llm-resilience/ChatRequest")({
  model: Schema.NonEmptyString,
  messages: Schema.Array(ChatMessage),
  maxTokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  temperature: Schema.optional(Schema.Number.pipe(Schema.between(0, 2))),
  topP: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
  seed: Schema.optional(Schema.Int),
  stop: Schema.optional(Schema.Array(Schema.String)),
  presencePenalty: Schema.optional(Schema.Number.pipe(Schema.between(-2, 2))),
  frequencyPenalty: Schema.optional(Schema.Number.pipe(Schema.between(-2, 2))),
  responseFormat: Schema.optional(ResponseFormat),
  tools: Schema.optional(Schema.Array(ToolDefinition)),
  toolChoice: Schema.optional(ToolChoice),
  user: Schema.optional(Schema.String),
  idempotencyKey: Schema.optional(Schema.NonEmptyString),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
}) {}

/**
 * Token usage of one call. `estimated` is true when the provider reported no usage (or only part of it) and the
 * library counted the missing part itself: prompt tokens with the `Tokenizer` in context (exact by default),
 * completion tokens from the text received. Budgets, rate limits and metrics charge it all the same.
 *
 * `cachedInputTokens` is the part of `inputTokens` read from the provider's prompt cache (OpenAI's
 * `prompt_tokens_details.cached_tokens`, Anthropic's `cache_read_input_tokens`), priced at the model's cached-input
 * price; `reasoningTokens` is the part of `outputTokens` the model spent reasoning (OpenAI's
 * `completion_tokens_details.reasoning_tokens`), already counted and priced as output. Both are parts, never
 * extra tokens, and are absent when the provider reported none (or zero). `cacheWriteInputTokens` is the part of
 * `inputTokens` written to the prompt cache (Anthropic's `cache_creation_input_tokens`), priced at the model's
 * cache-write price (1.25× input for Anthropic's 5-minute cache).
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const usage: Llm.Usage = { inputTokens: 12, outputTokens: 30 }
 * const counted: Llm.Usage = { inputTokens: 12, outputTokens: 30, estimated: true }
 * const cached: Llm.Usage = { inputTokens: 2048, outputTokens: 300, cachedInputTokens: 1024, reasoningTokens: 256 }
 * ```
 * @since 0.1.0
 * @category Models
 */
export const Usage = Schema.Struct({
  inputTokens: Schema.NonNegativeInt,
  outputTokens: Schema.NonNegativeInt,
  estimated: Schema.optional(Schema.Boolean),
  cachedInputTokens: Schema.optional(Schema.NonNegativeInt),
  reasoningTokens: Schema.optional(Schema.NonNegativeInt),
  cacheWriteInputTokens: Schema.optional(Schema.NonNegativeInt)
})

/**
 * @since 0.1.0
 * @category Models
 */
export type Usage = typeof Usage.Type

/**
 * Where a response came from: the provider, the response cache, or an idempotency record replay.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const source: Llm.ServedFrom = "cache"
 * ```
 * @since 0.1.0
 * @category Models
 */
export const ServedFrom = Schema.Literal("provider", "cache", "idempotency")

/**
 * @since 0.1.0
 * @category Models
 */
export type ServedFrom = typeof ServedFrom.Type

/**
 * A completed chat response. `model` is the model that actually answered (after any fallback).
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const response = new Llm.ChatResponse({
 *   id: "chatcmpl-1",
 *   model: "gpt-4o-mini",
 *   content: "Hello!",
 *   finishReason: "stop",
 *   usage: { inputTokens: 5, outputTokens: 2 },
 *   servedFrom: "provider"
 * })
 * ```
 * @since 0.1.0
 * @category Models
 */
export class ChatResponse extends Schema.Class<ChatResponse>("effect-llm-resilience/ChatResponse")({
  id: Schema.String,
  model: Schema.String,
  content: Schema.String,
  finishReason: Schema.String,
  usage: Usage,
  servedFrom: ServedFrom,
  toolCalls: Schema.optional(Schema.Array(ToolCall)),
  /** The id of the `Router` deployment that answered, when a router chose one. */
  deployment: Schema.optional(Schema.String)
}) {}

/**
 * One element of a streamed response: a text delta (possibly empty). The last chunk carries
 * `finishReason`, `usage` when the provider reports it, and `toolCalls` when the model called tools (assembled
 * from the stream's deltas: a tool call is only useful whole).
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * const chunk = new Llm.ChatChunk({ content: "Hel", model: "gpt-4o-mini" })
 * ```
 * @since 0.1.0
 * @category Models
 */
export class ChatChunk extends Schema.Class<ChatChunk>("effect-llm-resilience/ChatChunk")({
  content: Schema.String,
  model: Schema.String,
  finishReason: Schema.optional(Schema.String),
  usage: Schema.optional(Usage),
  servedFrom: Schema.optional(ServedFrom),
  toolCalls: Schema.optional(Schema.Array(ToolCall)),
  /** On the last chunk: the id of the `Router` deployment that answered, when a router chose one. */
  deployment: Schema.optional(Schema.String)
}) {}

/**
 * Decodes a plain object into a {@link ChatRequest}, failing with {@link InvalidOptions} that lists every
 * failing path.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { Llm } from "effect-llm-resilience"
 * const program = Llm.decodeRequest({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] })
 * Effect.runPromise(program).then((request) => console.log(request.model))
 * ```
 * @since 0.1.0
 * @category Constructors
 */
export const decodeRequest = (input: unknown): Effect.Effect<ChatRequest, InvalidOptions> =>
  Schema.decodeUnknown(ChatRequest, { errors: "all" })(input).pipe(
    Effect.mapError((error) => InvalidOptions.fromParseError("ChatRequest", error))
  )

/**
 * Concatenates the text of a list of chunks.
 *
 * @example
 * ```ts
 * import { Llm } from "effect-llm-resilience"
 * Llm.joinChunks([new Llm.ChatChunk({ content: "a", model: "m" }), new Llm.ChatChunk({ content: "b", model: "m" })]) // "ab"
 * ```
 * @since 0.1.0
 * @category Combinators
 */
export const joinChunks = (chunks: Iterable<ChatChunk>): string => {
  let text = ""
  for (const chunk of chunks) text += chunk.content
  return text
}
