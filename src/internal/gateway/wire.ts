/**
 * The OpenAI Chat Completions wire format from the gateway's side: a request body (and its headers) to a
 * `ChatRequest` scoped by the key's tenant, and a `ChatResponse` or a stream of `ChatChunk`s back to a
 * `chat.completion` body or `chat.completion.chunk` events (a role delta first, the content deltas, a chunk with the
 * finish reason, the usage chunk when `stream_options.include_usage`, then `data: [DONE]`).
 */
import { Either, ParseResult, Schema } from "effect"
import { ChatRequest, type ChatChunk, type ChatResponse, type ToolCall, type Usage } from "../../Llm.js"

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optional(Schema.NullOr(schema))

const Part = Schema.Struct({ type: Schema.String, text: Schema.optional(Schema.String) })
const Content = Schema.Union(Schema.String, Schema.Array(Part))

const Message = Schema.Struct({
  role: Schema.Literal("system", "developer", "user", "assistant", "tool"),
  content: optional(Content),
  name: optional(Schema.String),
  tool_call_id: optional(Schema.String),
  tool_calls: optional(Schema.Array(Schema.Struct({
    id: Schema.String,
    function: Schema.Struct({ name: Schema.String, arguments: Schema.String })
  })))
})

/** The body of `POST /v1/chat/completions` the gateway reads (unknown fields are ignored, as OpenAI's SDKs add some). */
export const Body = Schema.Struct({
  model: Schema.NonEmptyString,
  messages: Schema.Array(Message),
  stream: optional(Schema.Boolean),
  stream_options: optional(Schema.Struct({ include_usage: optional(Schema.Boolean) })),
  max_tokens: optional(Schema.Int),
  max_completion_tokens: optional(Schema.Int),
  temperature: optional(Schema.Number),
  top_p: optional(Schema.Number),
  seed: optional(Schema.Int),
  stop: optional(Schema.Union(Schema.String, Schema.Array(Schema.String))),
  presence_penalty: optional(Schema.Number),
  frequency_penalty: optional(Schema.Number),
  n: optional(Schema.Literal(1)),
  response_format: optional(Schema.Struct({
    type: Schema.Literal("text", "json_object", "json_schema"),
    json_schema: optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
  })),
  tools: optional(Schema.Array(Schema.Struct({
    type: Schema.optional(Schema.String),
    function: Schema.Struct({
      name: Schema.String,
      description: optional(Schema.String),
      parameters: optional(Schema.Record({ key: Schema.String, value: Schema.Unknown }))
    })
  }))),
  tool_choice: optional(Schema.Union(
    Schema.Literal("auto", "none", "required"),
    Schema.Struct({ function: Schema.Struct({ name: Schema.String }) })
  )),
  user: optional(Schema.String),
  metadata: optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})

/** A decoded body. */
export type Body = typeof Body.Type

/** What a bad body gets: the failing paths, never the values (they may be prompt text). */
export interface BodyError {
  readonly message: string
  readonly param: string | null
}

const failingPaths = (error: ParseResult.ParseError): BodyError => {
  const paths = [...new Set(ParseResult.ArrayFormatter.formatErrorSync(error).map((i) => i.path.join(".") || "(root)"))]
  return { message: `Invalid request body: missing or invalid field(s) ${paths.join(", ")}`, param: paths[0] ?? null }
}

/** Decodes a request body. */
export const decodeBody = (input: unknown): Either.Either<Body, BodyError> =>
  Either.mapLeft(Schema.decodeUnknownEither(Body, { errors: "all" })(input), failingPaths)

const text = (content: typeof Content.Type | null | undefined): string =>
  content === null || content === undefined
    ? ""
    : typeof content === "string"
    ? content
    : content.map((part) => (part.type === "text" ? part.text ?? "" : "")).join("")

/**
 * The `user` a request runs as: the tenant (percent-encoded, so no tenant can spell another's prefix) and the
 * client's own `user`. Every cache, idempotency and budget key is scoped by it, so two tenants never share one.
 */
export const scopedUser = (tenant: string, user: string | undefined): string => `${encodeURIComponent(tenant)}:${user ?? ""}`

/** The `x-llm-metadata-*` headers as metadata (`x-llm-metadata-tier: small` → `{ tier: "small" }`). */
export const metadataOf = (headers: Readonly<Record<string, string | undefined>>): Record<string, string> => {
  const metadata: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase()
    if (lower.startsWith("x-llm-metadata-") && value !== undefined && lower.length > 15) metadata[lower.slice(15)] = value
  }
  return metadata
}

/** What the headers of a request add to it. */
export interface RequestContext {
  readonly tenant: string
  readonly headers: Readonly<Record<string, string | undefined>>
}

const maxTokensOf = (body: Body): number | undefined => body.max_completion_tokens ?? body.max_tokens ?? undefined

/** The library's request for a body: the tenant-scoped user, the Idempotency-Key header and the metadata headers. */
export const toRequest = (body: Body, context: RequestContext): Either.Either<ChatRequest, BodyError> => {
  const idempotencyKey = context.headers["idempotency-key"]
  const metadata = { ...body.metadata, ...metadataOf(context.headers) }
  const format = body.response_format ?? undefined
  const input = {
    model: body.model,
    messages: body.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: text(m.content),
      ...(m.name == null ? {} : { name: m.name }),
      ...(m.tool_call_id == null ? {} : { toolCallId: m.tool_call_id }),
      ...(m.tool_calls == null ? {} : {
        toolCalls: m.tool_calls.map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }))
      })
    })),
    maxTokens: maxTokensOf(body),
    temperature: body.temperature ?? undefined,
    topP: body.top_p ?? undefined,
    seed: body.seed ?? undefined,
    stop: body.stop == null ? undefined : typeof body.stop === "string" ? [body.stop] : body.stop,
    presencePenalty: body.presence_penalty ?? undefined,
    frequencyPenalty: body.frequency_penalty ?? undefined,
    responseFormat: format === undefined || format === null
      ? undefined
      : format.type === "json_schema"
      ? { type: "json_schema", jsonSchema: format.json_schema ?? {} }
      : { type: format.type },
    tools: body.tools?.map((t) => ({
      name: t.function.name,
      ...(t.function.description == null ? {} : { description: t.function.description }),
      ...(t.function.parameters == null ? {} : { parameters: t.function.parameters })
    })),
    toolChoice: body.tool_choice == null
      ? undefined
      : typeof body.tool_choice === "string"
      ? body.tool_choice
      : { name: body.tool_choice.function.name },
    user: scopedUser(context.tenant, body.user ?? undefined),
    idempotencyKey: idempotencyKey === undefined || idempotencyKey === "" ? undefined : idempotencyKey,
    metadata: Object.keys(metadata).length === 0 ? undefined : metadata
  }
  return Either.mapLeft(Schema.decodeUnknownEither(ChatRequest, { errors: "all" })(input), (error) => {
    const failed = failingPaths(error)
    return { ...failed, message: failed.message.replace("Invalid request body", "Invalid request") }
  })
}

/** OpenAI's usage object. */
export const usageBody = (usage: Usage) => ({
  prompt_tokens: usage.inputTokens,
  completion_tokens: usage.outputTokens,
  total_tokens: usage.inputTokens + usage.outputTokens,
  prompt_tokens_details: { cached_tokens: usage.cachedInputTokens ?? 0 },
  completion_tokens_details: { reasoning_tokens: usage.reasoningTokens ?? 0 }
})

const toolCallsBody = (calls: ReadonlyArray<ToolCall>) =>
  calls.map((call, index) => ({ index, id: call.id, type: "function", function: { name: call.name, arguments: call.arguments } }))

/** The `chat.completion` body of a response. */
export const completionBody = (response: ChatResponse, created: number) => {
  const calls = response.toolCalls ?? []
  return {
    id: response.id,
    object: "chat.completion",
    created,
    model: response.model,
    choices: [{
      index: 0,
      message: {
        role: "assistant",
        content: calls.length > 0 && response.content === "" ? null : response.content,
        refusal: null,
        ...(calls.length > 0 ? { tool_calls: toolCallsBody(calls).map(({ index: _, ...call }) => call) } : {})
      },
      logprobs: null,
      finish_reason: response.finishReason
    }],
    usage: usageBody(response.usage)
  }
}

/** What the last chunk adds beyond OpenAI's fields: the deployment that answered and the call's cost. */
export interface Extra {
  readonly deployment?: string | undefined
  readonly costUsd?: number | undefined
}

/** Writes one stream's events, chunk by chunk; `id`, `created` and `includeUsage` are fixed for the stream. */
export const sseWriter = (options: { readonly id: string; readonly created: number; readonly includeUsage: boolean }) => {
  const event = (model: string, delta: object, finish: string | null, extra?: object) =>
    `data: ${JSON.stringify({
      id: options.id,
      object: "chat.completion.chunk",
      created: options.created,
      model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(options.includeUsage ? { usage: null } : {}),
      ...extra
    })}\n\n`
  return {
    /** The opening role delta. */
    opening: (model: string): string => event(model, { role: "assistant", content: "" }, null),
    /** The events of one chunk (none for an empty delta that does not end the stream). */
    chunk: (chunk: ChatChunk, extra: (chunk: ChatChunk) => Extra): ReadonlyArray<string> => {
      const events: Array<string> = []
      if (chunk.content !== "") events.push(event(chunk.model, { content: chunk.content }, null))
      if (chunk.finishReason === undefined) return events
      if (chunk.toolCalls !== undefined && chunk.toolCalls.length > 0) {
        events.push(event(chunk.model, { tool_calls: toolCallsBody(chunk.toolCalls) }, null))
      }
      const { costUsd, deployment } = extra(chunk)
      events.push(event(chunk.model, {}, chunk.finishReason, { x_llm: { deployment: deployment ?? null, cost_usd: costUsd ?? null } }))
      if (options.includeUsage && chunk.usage !== undefined) {
        events.push(`data: ${JSON.stringify({
          id: options.id,
          object: "chat.completion.chunk",
          created: options.created,
          model: chunk.model,
          choices: [],
          usage: usageBody(chunk.usage)
        })}\n\n`)
      }
      return events
    },
    done: "data: [DONE]\n\n",
    /** A failure after the stream started: an error event, which OpenAI's SDKs raise as an APIError. */
    error: (body: object): string => `data: ${JSON.stringify(body)}\n\n`
  }
}
