/**
 * The OpenAI Chat Completions dialect of the ChaosServer: `POST /v1/chat/completions`, a `chat.completion` body
 * or a stream of `chat.completion.chunk` events ending with `data: [DONE]`.
 */
import { HttpServerResponse } from "@effect/platform"
import { Schema } from "effect"
import type { Call, Handler, Question, SsePlan, Turn } from "./chaosCall.js"
import { jsonReply, sseReply } from "./chaosCall.js"
import * as Content from "./chaosContent.js"
import type { ToolRequest } from "./chaosTools.js"

const Limit = Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.positive())))

const ChatBody = Schema.Struct({
  model: Schema.NonEmptyString,
  messages: Schema.Array(Schema.Struct({ role: Schema.String, content: Schema.optional(Schema.Unknown) })),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  stream_options: Schema.optional(Schema.NullOr(Schema.Struct({ include_usage: Schema.optional(Schema.NullOr(Schema.Boolean)) }))),
  // OpenAI answers 400 to a limit below 1; so does the ChaosServer, rather than slicing the answer oddly.
  max_tokens: Limit,
  max_completion_tokens: Limit,
  response_format: Schema.optional(Schema.NullOr(Schema.Struct({
    type: Schema.String,
    json_schema: Schema.optional(Schema.NullOr(Schema.Struct({ schema: Schema.optional(Schema.Unknown) })))
  }))),
  tools: Schema.optional(Schema.NullOr(Schema.Array(Schema.Struct({
    function: Schema.optional(Schema.Struct({ name: Schema.String, parameters: Schema.optional(Schema.Unknown) }))
  })))),
  tool_choice: Schema.optional(Schema.Unknown)
})

type ChatBody = typeof ChatBody.Type

/** An OpenAI 400 body (chat completions and Responses share the error format). */
export const invalidRequest = (message: string, param: string | null) =>
  HttpServerResponse.unsafeJson(
    { error: { message, type: "invalid_request_error", param, code: null } },
    { status: 400 }
  )

const toolChoice = (choice: unknown): ToolRequest["choice"] => {
  if (choice === "none" || choice === "required") return choice
  if (typeof choice === "object" && choice !== null) {
    const fn = (choice as { readonly function?: { readonly name?: unknown } }).function
    if (typeof fn?.name === "string") return { name: fn.name }
  }
  return "auto"
}

const question = (body: ChatBody): Question => {
  const last = body.messages.at(-1)
  const lastUser = Content.lastUser(body.messages)
  const format = body.response_format?.type
  return {
    prompt: Content.promptText(body.messages),
    json: format === "json_object" || format === "json_schema",
    schema: format === "json_schema" ? body.response_format?.json_schema?.schema : undefined,
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    tools: {
      tools: (body.tools ?? []).flatMap((tool) =>
        tool.function === undefined ? [] : [{ name: tool.function.name, schema: tool.function.parameters }]
      ),
      choice: toolChoice(body.tool_choice),
      lastUserText: Content.contentText(lastUser?.content),
      afterToolResult: last?.role === "tool"
    }
  }
}

const usageOf = (call: Call<ChatBody>) => {
  const turn = call.turn
  const [prompt, completion] = turn._tag === "text"
    ? [turn.answer.promptTokens, turn.answer.completionTokens]
    : [turn.promptTokens, turn._tag === "tool" ? turn.completionTokens : 0]
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: Math.min(call.cachedTokens, prompt), audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 }
  }
}

const finishReason = (turn: Turn): string =>
  turn._tag === "text" ? turn.answer.finishReason : turn._tag === "tool" ? "tool_calls" : "content_filter"

const message = (turn: Turn) =>
  turn._tag === "tool"
    ? {
      role: "assistant",
      content: null,
      refusal: null,
      tool_calls: [{ id: turn.id, type: "function", function: { name: turn.name, arguments: turn.arguments } }]
    }
    : { role: "assistant", content: turn._tag === "text" ? turn.answer.content : "", refusal: null }

const completionBody = (call: Call<ChatBody>) => ({
  id: `chatcmpl-chaos-${call.index}`,
  object: "chat.completion",
  created: Math.floor(call.now / 1000),
  model: call.model,
  choices: [{ index: 0, message: message(call.turn), logprobs: null, finish_reason: finishReason(call.turn) }],
  ...(call.state.settings.usage ? { usage: usageOf(call) } : {})
})

const deltas = (turn: Turn): { readonly opening: object; readonly rest: ReadonlyArray<object> } => {
  if (turn._tag !== "tool") {
    const text = turn._tag === "text" ? turn.answer.content : ""
    return { opening: { role: "assistant", content: "" }, rest: Content.pieces(text).map((content) => ({ content })) }
  }
  // As OpenAI streams a call: the id and name with the role first, then the arguments a few characters at a time.
  const head = { index: 0, id: turn.id, type: "function", function: { name: turn.name, arguments: "" } }
  return {
    opening: { role: "assistant", content: null, tool_calls: [head] },
    rest: Content.argumentPieces(turn.arguments).map((piece) => ({ tool_calls: [{ index: 0, function: { arguments: piece } }] }))
  }
}

const ssePlan = (call: Call<ChatBody>): SsePlan => {
  const withUsage = call.state.settings.usage && call.body.stream_options?.include_usage === true
  const chunk = (delta: object, finish: string | null) => Content.sse({
    id: `chatcmpl-chaos-${call.index}`,
    object: "chat.completion.chunk",
    created: Math.floor(call.now / 1000),
    model: call.model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    // With include_usage OpenAI sends `usage: null` on every chunk but the last.
    ...(withUsage ? { usage: null } : {})
  })
  const { opening, rest } = deltas(call.turn)
  const usage = Content.sse({
    id: `chatcmpl-chaos-${call.index}`,
    object: "chat.completion.chunk",
    created: Math.floor(call.now / 1000),
    model: call.model,
    choices: [],
    usage: usageOf(call)
  })
  return {
    opening: [chunk(opening, null)],
    deltas: rest.map((delta) => chunk(delta, null)),
    finish: [chunk({}, finishReason(call.turn)), ...(withUsage ? [usage] : []), Content.sse("[DONE]")],
    broken: Content.brokenEvent(chunk({ content: "x" }, null))
  }
}

/** The chat completions dialect. */
export const chat: Handler<ChatBody, typeof ChatBody.Encoded> = {
  dialect: "chat",
  schema: ChatBody,
  requestIdHeader: "x-request-id",
  invalid: invalidRequest,
  model: (body) => body.model,
  errorBody: (error, model) => Content.errorBody(error.status, error.code, model),
  toolCallPrefix: "call_",
  question,
  reply: (call) => call.body.stream === true ? sseReply(call, ssePlan(call)) : jsonReply(call, completionBody(call))
}
