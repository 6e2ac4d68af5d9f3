/**
 * The OpenAI Responses dialect of the ChaosServer (what `@effect/ai-openai` speaks): `POST /v1/responses`, a
 * `response` object or the `response.*` event stream (`response.created`, `response.in_progress`,
 * `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`, …,
 * `response.completed` with usage), with OpenAI's error bodies. A cut answer (`max_output_tokens`) or a filtered
 * one is `status: "incomplete"` and its stream ends with `response.incomplete`.
 */
import { Schema } from "effect"
import type { Call, Handler, Question, SsePlan, Turn } from "./chaosCall.js"
import { jsonReply, sseReply } from "./chaosCall.js"
import { invalidRequest } from "./chaosChat.js"
import * as Content from "./chaosContent.js"
import type { ToolRequest } from "./chaosTools.js"

const Item = Schema.Record({ key: Schema.String, value: Schema.Unknown })

const ResponsesBody = Schema.Struct({
  model: Schema.NonEmptyString,
  input: Schema.optional(Schema.NullOr(Schema.Union(Schema.String, Schema.Array(Item)))),
  instructions: Schema.optional(Schema.NullOr(Schema.String)),
  stream: Schema.optional(Schema.NullOr(Schema.Boolean)),
  max_output_tokens: Schema.optional(Schema.NullOr(Schema.Int.pipe(Schema.positive()))),
  text: Schema.optional(Schema.NullOr(Schema.Struct({
    format: Schema.optional(Schema.NullOr(Schema.Struct({ type: Schema.String, schema: Schema.optional(Schema.Unknown) })))
  }))),
  tools: Schema.optional(Schema.NullOr(Schema.Array(Item))),
  tool_choice: Schema.optional(Schema.Unknown),
  temperature: Schema.optional(Schema.NullOr(Schema.Number)),
  top_p: Schema.optional(Schema.NullOr(Schema.Number)),
  metadata: Schema.optional(Schema.NullOr(Item))
})

type ResponsesBody = typeof ResponsesBody.Type

interface FunctionTool {
  readonly name: string
  readonly description: string | null
  readonly parameters: unknown
  readonly strict: boolean | null
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null

const functionTools = (body: ResponsesBody): ReadonlyArray<FunctionTool> =>
  (body.tools ?? []).flatMap((tool) =>
    tool.type === "function" && typeof tool.name === "string"
      ? [{
        name: tool.name,
        description: typeof tool.description === "string" ? tool.description : null,
        parameters: isRecord(tool.parameters) ? tool.parameters : null,
        strict: typeof tool.strict === "boolean" ? tool.strict : null
      }]
      : []
  )

const toolChoice = (choice: unknown, tools: ReadonlyArray<FunctionTool>): ToolRequest["choice"] => {
  if (choice === "none" || choice === "required") return choice
  if (isRecord(choice) && choice.type === "function" && typeof choice.name === "string") return { name: choice.name }
  if (isRecord(choice) && choice.type === "allowed_tools" && choice.mode === "required") {
    const allowed = Array.isArray(choice.tools) ? choice.tools.find((t) => isRecord(t) && typeof t.name === "string") : undefined
    return isRecord(allowed) && typeof allowed.name === "string" ? { name: allowed.name } : tools.length > 0 ? "required" : "auto"
  }
  return "auto"
}

/** The input items as role / content pairs (function calls and their outputs included), for the prompt text. */
const messagesOf = (body: ResponsesBody): ReadonlyArray<{ readonly role: string; readonly content: unknown }> => {
  const input = body.input ?? []
  const items = typeof input === "string" ? [{ role: "user", content: input }] : input.map((item) => {
    if (item.type === "function_call") return { role: "assistant", content: `${String(item.name)}(${String(item.arguments)})` }
    if (item.type === "function_call_output") return { role: "tool", content: item.output }
    return { role: typeof item.role === "string" ? item.role : "user", content: item.content }
  })
  return body.instructions == null ? items : [{ role: "system", content: body.instructions }, ...items]
}

const question = (body: ResponsesBody): Question => {
  const messages = messagesOf(body)
  const tools = functionTools(body)
  const input = typeof body.input === "string" || body.input == null ? [] : body.input
  const format = body.text?.format
  return {
    prompt: Content.promptText(messages),
    json: format?.type === "json_schema" || format?.type === "json_object",
    schema: format?.type === "json_schema" ? format.schema : undefined,
    maxTokens: body.max_output_tokens ?? undefined,
    tools: {
      tools: tools.map((tool) => ({ name: tool.name, schema: tool.parameters ?? undefined })),
      choice: toolChoice(body.tool_choice, tools),
      lastUserText: Content.contentText(Content.lastUser(messages)?.content),
      afterToolResult: input.at(-1)?.type === "function_call_output"
    }
  }
}

// Only what the client sent and the decoder accepts is echoed: function tools, and a tool choice of a known shape.
const echoedToolChoice = (choice: unknown): unknown =>
  choice === "none" || choice === "auto" || choice === "required" ||
    (isRecord(choice) && choice.type === "function" && typeof choice.name === "string")
    ? choice
    : "auto"

const incomplete = (turn: Turn): "max_output_tokens" | "content_filter" | undefined =>
  turn._tag === "filtered" ? "content_filter" : turn._tag === "text" && turn.answer.finishReason === "length" ? "max_output_tokens" : undefined

const usageOf = (call: Call<ResponsesBody>) => {
  const turn = call.turn
  const [input, output] = turn._tag === "text"
    ? [turn.answer.promptTokens, turn.answer.completionTokens]
    : [turn.promptTokens, turn._tag === "tool" ? turn.completionTokens : 0]
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: Math.min(call.cachedTokens, input) },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: input + output
  }
}

type Status = "in_progress" | "completed" | "incomplete"

const itemId = (call: Call<ResponsesBody>) => `${call.turn._tag === "tool" ? "fc" : "msg"}_chaos_${call.index}`

const textPart = (text: string) => ({ type: "output_text", text, annotations: [], logprobs: [] })

/** The output item of the turn, in progress (empty) or done. */
const item = (call: Call<ResponsesBody>, done: boolean) => {
  const turn = call.turn
  const status: Status = done ? (incomplete(turn) === undefined ? "completed" : "incomplete") : "in_progress"
  if (turn._tag === "tool") {
    return { type: "function_call", id: itemId(call), call_id: turn.id, name: turn.name, arguments: done ? turn.arguments : "", status }
  }
  const text = turn._tag === "text" ? turn.answer.content : ""
  return { type: "message", id: itemId(call), status, role: "assistant", content: done ? [textPart(text)] : [] }
}

/** The `response` object: in progress (no output yet) or done (`completed` or `incomplete`, with usage). */
const responseObject = (call: Call<ResponsesBody>, done: boolean) => {
  const reason = incomplete(call.turn)
  const withUsage = done && call.state.settings.usage
  return {
    id: `resp_chaos_${call.index}`,
    object: "response",
    created_at: Math.floor(call.now / 1000),
    status: done ? (reason === undefined ? "completed" : "incomplete") : "in_progress",
    error: null,
    incomplete_details: done && reason !== undefined ? { reason } : null,
    instructions: call.body.instructions ?? null,
    max_output_tokens: call.body.max_output_tokens ?? null,
    model: call.model,
    output: done && call.turn._tag !== "filtered" ? [item(call, true)] : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    temperature: call.body.temperature ?? 1,
    top_p: call.body.top_p ?? 1,
    tool_choice: echoedToolChoice(call.body.tool_choice),
    tools: functionTools(call.body).map((tool) => ({ type: "function", ...tool })),
    truncation: "disabled",
    metadata: call.body.metadata ?? {},
    ...(withUsage ? { usage: usageOf(call) } : done ? {} : { usage: null })
  }
}

const ssePlan = (call: Call<ResponsesBody>): SsePlan => {
  let sequence = 0
  const event = (type: string, fields: object) => Content.sseEvent(type, { type, sequence_number: sequence++, ...fields })
  const opening = [
    event("response.created", { response: responseObject(call, false) }),
    event("response.in_progress", { response: responseObject(call, false) })
  ]
  const at = { output_index: 0, item_id: itemId(call) }
  const turn = call.turn
  const ending = () => event(`response.${incomplete(turn) === undefined ? "completed" : "incomplete"}`, { response: responseObject(call, true) })
  if (turn._tag === "filtered") {
    return { opening, deltas: [], finish: [ending()], broken: Content.brokenEvent(event("response.output_text.delta", { ...at, delta: "x" })) }
  }
  opening.push(event("response.output_item.added", { output_index: 0, item: item(call, false) }))
  if (turn._tag === "tool") {
    const deltas = Content.argumentPieces(turn.arguments).map((delta) => event("response.function_call_arguments.delta", { ...at, delta }))
    return {
      opening,
      deltas,
      finish: [
        event("response.function_call_arguments.done", { ...at, arguments: turn.arguments }),
        event("response.output_item.done", { output_index: 0, item: item(call, true) }),
        ending()
      ],
      broken: Content.brokenEvent(event("response.function_call_arguments.delta", { ...at, delta: "x" }))
    }
  }
  const part = { ...at, content_index: 0 }
  opening.push(event("response.content_part.added", { ...part, part: textPart("") }))
  const deltas = Content.pieces(turn.answer.content).map((delta) => event("response.output_text.delta", { ...part, delta, logprobs: [] }))
  return {
    opening,
    deltas,
    finish: [
      event("response.output_text.done", { ...part, text: turn.answer.content, logprobs: [] }),
      event("response.content_part.done", { ...part, part: textPart(turn.answer.content) }),
      event("response.output_item.done", { output_index: 0, item: item(call, true) }),
      ending()
    ],
    broken: Content.brokenEvent(event("response.output_text.delta", { ...part, delta: "x", logprobs: [] }))
  }
}

/** The OpenAI Responses dialect. */
export const responses: Handler<ResponsesBody, typeof ResponsesBody.Encoded> = {
  dialect: "responses",
  schema: ResponsesBody,
  requestIdHeader: "x-request-id",
  invalid: invalidRequest,
  model: (body) => body.model,
  errorBody: (error, model) => Content.errorBody(error.status, error.code, model),
  toolCallPrefix: "call_",
  question,
  reply: (call) => call.body.stream === true ? sseReply(call, ssePlan(call)) : jsonReply(call, responseObject(call, true))
}
