/**
 * The Anthropic Messages dialect of the ChaosServer: `POST /v1/messages`, a `message` body or the event stream
 * Anthropic sends (`message_start`, `content_block_start`, `ping`, `content_block_delta`, `content_block_stop`,
 * `message_delta`, `message_stop`, each with its `event:` line), and Anthropic's error bodies.
 * `x-api-key` and `anthropic-version` are accepted but not required.
 */
import { HttpServerResponse } from "@effect/platform"
import { Schema } from "effect"
import type { Call, Handler, Question, SsePlan, Turn } from "./chaosCall.js"
import { jsonReply, sseReply } from "./chaosCall.js"
import * as Content from "./chaosContent.js"
import type { ToolRequest } from "./chaosTools.js"

const Block = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const Text = Schema.Union(Schema.String, Schema.Array(Block))

const MessagesBody = Schema.Struct({
  model: Schema.NonEmptyString,
  // Required by Anthropic (a request without it is a 400 there too).
  max_tokens: Schema.Int.pipe(Schema.positive()),
  messages: Schema.Array(Schema.Struct({ role: Schema.Literal("user", "assistant"), content: Text })),
  system: Schema.optional(Schema.NullOr(Text)),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  tools: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
    name: Schema.String,
    input_schema: Schema.optional(Schema.Unknown)
  })))),
  tool_choice: Schema.optional(Schema.NullOr(Schema.Struct({
    type: Schema.Literal("auto", "any", "tool", "none"),
    name: Schema.optional(Schema.String)
  })))
})

type MessagesBody = typeof MessagesBody.Type

/** The error types of Anthropic's API, by the status it sends them with. */
const typeByStatus = (status: number): string => {
  switch (status) {
    case 400:
      return "invalid_request_error"
    case 401:
      return "authentication_error"
    case 402:
      return "billing_error"
    case 403:
      return "permission_error"
    case 404:
      return "not_found_error"
    case 413:
      return "request_too_large"
    case 429:
      return "rate_limit_error"
    case 504:
      return "timeout_error"
    case 529:
      return "overloaded_error"
    default:
      return status >= 500 ? "api_error" : "invalid_request_error"
  }
}

const anthropicTypes = new Set([
  "invalid_request_error", "authentication_error", "billing_error", "permission_error", "not_found_error",
  "request_too_large", "rate_limit_error", "timeout_error", "api_error", "overloaded_error"
])

const errorMessages: Record<string, (model: string) => string> = {
  invalid_request_error: () => "Invalid request.",
  authentication_error: () => "invalid x-api-key",
  billing_error: () => "Your credit balance is too low to access the Anthropic API.",
  permission_error: () => "Your API key does not have permission to use the specified resource.",
  not_found_error: (model) => `model: ${model}`,
  request_too_large: () => "Request exceeds the maximum allowed number of bytes.",
  rate_limit_error: () => "This request would exceed the rate limit for your organization.",
  timeout_error: () => "Request timed out.",
  api_error: () => "Internal server error",
  overloaded_error: () => "Overloaded"
}

/**
 * An Anthropic error body. `code` may name an Anthropic error type (e.g. `overloaded_error` with a 503); the
 * OpenAI codes read as their Anthropic counterparts (`context_length_exceeded` → a "prompt is too long" 400,
 * `insufficient_quota` → `billing_error`, `content_filter` → a blocked-output 400).
 */
export const errorBody = (status: number, code: string | undefined, model: string, requestId: string) => {
  const type = code !== undefined && anthropicTypes.has(code)
    ? code
    : code === "insufficient_quota" ? "billing_error" : typeByStatus(status)
  const message = code === "context_length_exceeded"
    ? "prompt is too long: 250000 tokens > 200000 maximum"
    : code === "content_filter" || code === "content_policy_violation"
    ? "Output blocked by content filtering policy"
    : errorMessages[type](model)
  return { type: "error", error: { type, message }, request_id: requestId }
}

const invalid = (message: string) =>
  HttpServerResponse.unsafeJson({ type: "error", error: { type: "invalid_request_error", message } }, { status: 400 })

const blocks = (content: MessagesBody["messages"][number]["content"]) =>
  typeof content === "string" ? [] : content

const toolChoice = (choice: MessagesBody["tool_choice"]): ToolRequest["choice"] => {
  if (choice == null || choice.type === "auto") return "auto"
  if (choice.type === "none") return "none"
  if (choice.type === "any") return "required"
  return choice.name === undefined ? "required" : { name: choice.name }
}

const question = (body: MessagesBody): Question => {
  const last = body.messages.at(-1)
  const lastUser = Content.lastUser(body.messages)
  const system = body.system == null ? [] : [{ role: "system", content: body.system }]
  return {
    prompt: Content.promptText([...system, ...body.messages]),
    json: false,
    maxTokens: body.max_tokens,
    tools: {
      tools: (body.tools ?? []).map((tool) => ({ name: tool.name, schema: tool.input_schema })),
      choice: toolChoice(body.tool_choice),
      lastUserText: Content.contentText(lastUser?.content),
      afterToolResult: last?.role === "user" && blocks(last.content).some((block) => block.type === "tool_result")
    }
  }
}

const stopReason = (turn: Turn): string =>
  turn._tag === "tool"
    ? "tool_use"
    : turn._tag === "filtered"
    ? "refusal"
    : turn.answer.finishReason === "length" ? "max_tokens" : "end_turn"

const tokens = (turn: Turn) =>
  turn._tag === "text"
    ? { input: turn.answer.promptTokens, output: turn.answer.completionTokens }
    : { input: turn.promptTokens, output: turn._tag === "tool" ? turn.completionTokens : 0 }

// As Anthropic counts: `input_tokens` leaves out the prompt tokens read from the cache and those written to it.
const usage = (input: number, output: number, cached: number, written: number) => {
  const read = Math.min(cached, input)
  const created = Math.min(written, input - read)
  return {
    input_tokens: input - read - created,
    cache_creation_input_tokens: created,
    cache_read_input_tokens: read,
    output_tokens: output,
    service_tier: "standard"
  }
}

const content = (turn: Turn) =>
  turn._tag === "tool"
    ? [{ type: "tool_use", id: turn.id, name: turn.name, input: turn.input }]
    : turn._tag === "text" ? [{ type: "text", text: turn.answer.content }] : []

const message = (call: Call<MessagesBody>, done: boolean) => {
  const { input, output } = tokens(call.turn)
  return {
    id: `msg_chaos_${call.index}`,
    type: "message",
    role: "assistant",
    model: call.model,
    content: done ? content(call.turn) : [],
    stop_reason: done ? stopReason(call.turn) : null,
    stop_sequence: null,
    // Anthropic's message_start reports the input and a first output token; the message_delta the total.
    usage: usage(input, done ? output : 1, call.cachedTokens, call.cacheWriteTokens)
  }
}

const event = (data: { readonly type: string; readonly [key: string]: unknown }) => Content.sseEvent(data.type, data)

const blockEvents = (turn: Turn): { readonly start: object; readonly deltas: ReadonlyArray<object> } | undefined => {
  if (turn._tag === "filtered") return undefined
  if (turn._tag === "tool") {
    return {
      start: { type: "tool_use", id: turn.id, name: turn.name, input: {} },
      deltas: Content.argumentPieces(turn.arguments).map((partial_json) => ({ type: "input_json_delta", partial_json }))
    }
  }
  return {
    start: { type: "text", text: "" },
    deltas: Content.pieces(turn.answer.content).map((text) => ({ type: "text_delta", text }))
  }
}

const ssePlan = (call: Call<MessagesBody>): SsePlan => {
  const block = blockEvents(call.turn)
  const start = event({ type: "message_start", message: message(call, false) })
  const ping = event({ type: "ping" })
  const end = [
    event({
      type: "message_delta",
      delta: { stop_reason: stopReason(call.turn), stop_sequence: null },
      usage: { output_tokens: tokens(call.turn).output }
    }),
    event({ type: "message_stop" })
  ]
  if (block === undefined) return { opening: [start, ping], deltas: [], finish: end, broken: Content.brokenEvent(end[0]) }
  const delta = (d: object) => event({ type: "content_block_delta", index: 0, delta: d })
  return {
    opening: [start, event({ type: "content_block_start", index: 0, content_block: block.start }), ping],
    deltas: block.deltas.map(delta),
    finish: [event({ type: "content_block_stop", index: 0 }), ...end],
    broken: Content.brokenEvent(delta({ type: "text_delta", text: "x" }))
  }
}

/** The Anthropic Messages dialect. */
export const messages: Handler<MessagesBody, typeof MessagesBody.Encoded> = {
  dialect: "messages",
  schema: MessagesBody,
  requestIdHeader: "request-id",
  invalid: (message) => invalid(message),
  model: (body) => body.model,
  errorBody: (error, model, requestId) => errorBody(error.status, error.code, model, requestId),
  toolCallPrefix: "toolu_",
  question,
  reply: (call) => call.body.stream === true ? sseReply(call, ssePlan(call)) : jsonReply(call, message(call, true))
}
