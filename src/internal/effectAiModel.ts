/**
 * Up: a `LanguageModel` over the `LlmClient` in context, built with `LanguageModel.make`. The prompt, tools, tool
 * choice and JSON format become a `ChatRequest` (its model and settings from the defaults and the call's
 * `RequestOptions`); the response becomes `@effect/ai` parts; every LlmError travels as an `AiError`'s cause.
 */
import * as AiError from "@effect/ai/AiError"
import { IdGenerator } from "@effect/ai/IdGenerator"
import * as LanguageModel from "@effect/ai/LanguageModel"
import type * as Prompt from "@effect/ai/Prompt"
import type * as Response from "@effect/ai/Response"
import * as Tool from "@effect/ai/Tool"
import { Context, Effect, Either, ParseResult, Schema, Stream } from "effect"
import { type ChatChunk, type ChatMessage, ChatRequest, type ChatResponse, type ToolCall, type ToolDefinition } from "../Llm.js"
import { LlmClient } from "../LlmClient.js"
import { toAiError } from "./effectAiErrors.js"

/** The request fields a `LanguageModel` call cannot express: model and generation settings, tenant, keys. */
export interface RequestFields {
  readonly model?: string | undefined
  readonly maxTokens?: number | undefined
  readonly temperature?: number | undefined
  readonly topP?: number | undefined
  readonly seed?: number | undefined
  readonly stop?: ReadonlyArray<string> | undefined
  readonly presencePenalty?: number | undefined
  readonly frequencyPenalty?: number | undefined
  readonly user?: string | undefined
  readonly idempotencyKey?: string | undefined
  readonly metadata?: Readonly<Record<string, string>> | undefined
}

/** The Schema of {@link RequestFields} (misspelt keys are errors). */
export const RequestFieldsSchema = Schema.Struct({
  model: Schema.optional(Schema.NonEmptyString),
  maxTokens: Schema.optional(Schema.Int.pipe(Schema.positive())),
  temperature: Schema.optional(Schema.Number.pipe(Schema.between(0, 2))),
  topP: Schema.optional(Schema.Number.pipe(Schema.between(0, 1))),
  seed: Schema.optional(Schema.Int),
  stop: Schema.optional(Schema.Array(Schema.String)),
  presencePenalty: Schema.optional(Schema.Number.pipe(Schema.between(-2, 2))),
  frequencyPenalty: Schema.optional(Schema.Number.pipe(Schema.between(-2, 2))),
  user: Schema.optional(Schema.String),
  idempotencyKey: Schema.optional(Schema.NonEmptyString),
  metadata: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.String }))
})

/** The model asked for when neither the layer nor the call names one. */
export const defaultModel = "default"

/** The per-call request fields (`EffectAi.withRequest`). */
export class RequestOptions extends Context.Reference<RequestOptions>()("effect-llm-resilience/EffectAi/RequestOptions", {
  defaultValue: (): RequestFields => ({})
}) {}

const moduleName = "EffectAi"

const malformedInput = (method: string, description: string) =>
  new AiError.MalformedInput({ module: moduleName, method, description })

const malformedOutput = (method: string, description: string) =>
  new AiError.MalformedOutput({ module: moduleName, method, description })

// -----------------------------------------------------------------------------------------------------------------
// Prompt → ChatRequest
// -----------------------------------------------------------------------------------------------------------------

type Converted = Either.Either<ReadonlyArray<ChatMessage>, string>

const textOf = (parts: ReadonlyArray<{ readonly type: string; readonly text?: string }>): string =>
  parts.flatMap((part) => (part.type === "text" && part.text !== undefined ? [part.text] : [])).join("\n")

const stringified = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value) ?? "null")

const userMessage = (message: Prompt.UserMessage): Converted =>
  message.content.some((part) => part.type === "file")
    ? Either.left("file parts are not supported by the LlmClient bridge")
    : Either.right([{ role: "user", content: textOf(message.content) }])

const assistantMessage = (message: Prompt.AssistantMessage): Converted => {
  if (message.content.some((part) => part.type === "file")) {
    return Either.left("file parts are not supported by the LlmClient bridge")
  }
  const toolCalls: Array<ToolCall> = message.content.flatMap((part) =>
    part.type === "tool-call" && !part.providerExecuted
      ? [{ id: part.id, name: part.name, arguments: stringified(part.params ?? {}) }]
      : []
  )
  return Either.right([{
    role: "assistant",
    content: textOf(message.content),
    ...(toolCalls.length === 0 ? {} : { toolCalls })
  }])
}

const toolMessages = (message: Prompt.ToolMessage): Converted =>
  Either.right(message.content.map((part) => ({
    role: "tool" as const,
    content: stringified(part.result),
    toolCallId: part.id,
    name: part.name
  })))

const messagesOf = (prompt: Prompt.Prompt): Converted => {
  const messages: Array<ChatMessage> = []
  for (const message of prompt.content) {
    const converted: Converted = message.role === "system"
      ? Either.right([{ role: "system", content: message.content }])
      : message.role === "user"
      ? userMessage(message)
      : message.role === "assistant"
      ? assistantMessage(message)
      : toolMessages(message)
    if (Either.isLeft(converted)) return converted
    messages.push(...converted.right)
  }
  return Either.right(messages)
}

const toolsOf = (tools: ReadonlyArray<Tool.Any>): Either.Either<ReadonlyArray<ToolDefinition>, string> => {
  const definitions: Array<ToolDefinition> = []
  for (const tool of tools) {
    if (!Tool.isUserDefined(tool)) return Either.left(`the provider-defined tool "${tool.name}" is not supported`)
    // A tool's requirements are its handler's, irrelevant to its description and JSON Schema.
    const description = tool.description ?? Tool.getDescriptionFromSchemaAst(tool.parametersSchema.ast)
    definitions.push({
      name: tool.name,
      ...(description === undefined ? {} : { description }),
      parameters: Tool.getJsonSchemaFromSchemaAst(tool.parametersSchema.ast) as unknown as Record<string, unknown>
    })
  }
  return Either.right(definitions)
}

const toolChoiceOf = (choice: LanguageModel.ProviderOptions["toolChoice"]): ChatRequest["toolChoice"] => {
  if (typeof choice === "string") return choice
  if ("tool" in choice) return { name: choice.tool }
  // `oneOf` already narrowed the tools sent.
  return choice.mode === "required" ? "required" : "auto"
}

const formatOf = (format: LanguageModel.ProviderOptions["responseFormat"]): ChatRequest["responseFormat"] =>
  format.type === "text" ? undefined : {
    type: "json_schema",
    jsonSchema: {
      name: format.objectName,
      schema: Tool.getJsonSchemaFromSchemaAst(format.schema.ast),
      ...(Tool.getDescriptionFromSchemaAst(format.schema.ast) === undefined
        ? {}
        : { description: Tool.getDescriptionFromSchemaAst(format.schema.ast) })
    }
  }

// Only the failing paths: the parse messages quote actual values, which may be prompt text.
const failingPaths = (error: ParseResult.ParseError): string => {
  const paths = ParseResult.ArrayFormatter.formatErrorSync(error).map((issue) => issue.path.join(".") || "(root)")
  return `invalid request field(s): ${[...new Set(paths)].join(", ")}`
}

const decodeRequest = Schema.decodeUnknownEither(ChatRequest, { errors: "all" })

/** The ChatRequest of one `LanguageModel` call: the layer's defaults, then the call's `RequestOptions`. */
export const requestOf = (
  options: LanguageModel.ProviderOptions,
  defaults: RequestFields,
  method: string
): Effect.Effect<ChatRequest, AiError.AiError> =>
  Effect.flatMap(RequestOptions, (perCall) => {
    const messages = messagesOf(options.prompt)
    if (Either.isLeft(messages)) return Effect.fail(malformedInput(method, messages.left))
    const tools = toolsOf(options.tools)
    if (Either.isLeft(tools)) return Effect.fail(malformedInput(method, tools.left))
    const fields = { ...defaults, ...perCall }
    const decoded = decodeRequest({
      ...Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)),
      model: fields.model ?? defaultModel,
      messages: messages.right,
      ...(tools.right.length === 0 ? {} : { tools: tools.right, toolChoice: toolChoiceOf(options.toolChoice) }),
      ...(options.responseFormat.type === "text" ? {} : { responseFormat: formatOf(options.responseFormat) })
    })
    return Either.isRight(decoded)
      ? Effect.succeed(decoded.right)
      : Effect.fail(malformedInput(method, failingPaths(decoded.left)))
  })

// -----------------------------------------------------------------------------------------------------------------
// ChatResponse / ChatChunks → parts
// -----------------------------------------------------------------------------------------------------------------

/** This library's finish reasons (and Anthropic's) in `@effect/ai`'s spelling. */
export const finishReasonOf = (reason: string, hasToolCalls: boolean): Response.FinishReason => {
  switch (reason) {
    case "stop":
    case "end_turn":
    case "stop_sequence":
      return "stop"
    case "length":
    case "max_tokens":
      return "length"
    case "tool_calls":
    case "function_call":
    case "tool_use":
      return "tool-calls"
    case "content_filter":
    case "refusal":
      return "content-filter"
    case "error":
    case "pause":
    case "other":
    case "unknown":
      return reason
    case "pause_turn":
      return "pause"
    default:
      return hasToolCalls ? "tool-calls" : "other"
  }
}

/** The provider-metadata key of the parts this bridge makes. */
export const metadataKey = "effect-llm-resilience"

const usagePart = (usage: ChatResponse["usage"] | undefined): typeof Response.Usage.Encoded => ({
  inputTokens: usage?.inputTokens,
  outputTokens: usage?.outputTokens,
  totalTokens: usage === undefined ? undefined : usage.inputTokens + usage.outputTokens,
  ...(usage?.cachedInputTokens === undefined ? {} : { cachedInputTokens: usage.cachedInputTokens }),
  ...(usage?.reasoningTokens === undefined ? {} : { reasoningTokens: usage.reasoningTokens })
})

const toolCallPart = (call: ToolCall, method: string): Either.Either<Response.ToolCallPartEncoded, AiError.AiError> => {
  try {
    const params: unknown = call.arguments.trim() === "" ? {} : JSON.parse(call.arguments)
    return Either.right({ type: "tool-call", id: call.id, name: call.name, params, providerExecuted: false })
  } catch {
    return Either.left(malformedOutput(method, `the arguments of a call to the tool "${call.name}" are not JSON`))
  }
}

const toolCallParts = (calls: ReadonlyArray<ToolCall> | undefined, method: string) =>
  Effect.forEach(calls ?? [], (call) => toolCallPart(call, method))

const finishPart = (
  reason: string | undefined,
  usage: ChatResponse["usage"] | undefined,
  hasToolCalls: boolean,
  metadata: Readonly<Record<string, unknown>>
): Response.FinishPartEncoded => ({
  type: "finish",
  reason: reason === undefined ? "unknown" : finishReasonOf(reason, hasToolCalls),
  usage: usagePart(usage),
  metadata: { [metadataKey]: metadata }
})

/** The parts of a complete response: metadata, text, tool calls, finish (with `servedFrom` in its metadata). */
export const partsOf = (
  response: ChatResponse,
  method: string
): Effect.Effect<Array<Response.PartEncoded>, AiError.AiError> =>
  Effect.map(toolCallParts(response.toolCalls, method), (calls) => [
    { type: "response-metadata", id: response.id, modelId: response.model },
    ...(response.content === "" ? [] : [{ type: "text" as const, text: response.content }]),
    ...calls,
    finishPart(response.finishReason, response.usage, calls.length > 0, {
      model: response.model,
      servedFrom: response.servedFrom
    })
  ])

/** The stream parts of a stream of chunks: metadata, then text-start / text-delta… / text-end, tool calls, finish. */
export const streamPartsOf = (
  chunks: Stream.Stream<ChatChunk, AiError.AiError>,
  method: string
): Stream.Stream<Response.StreamPartEncoded, AiError.AiError, IdGenerator> =>
  Stream.unwrap(Effect.map(IdGenerator, (ids) => Stream.suspend(() => {
    let textId: string | undefined
    let opened = false
    let finished = false
    const closeText = (): Array<Response.StreamPartEncoded> =>
      textId === undefined ? [] : [{ type: "text-end", id: textId }]
    const onChunk = (chunk: ChatChunk): Effect.Effect<Array<Response.StreamPartEncoded>, AiError.AiError> =>
      Effect.gen(function*() {
        const parts: Array<Response.StreamPartEncoded> = []
        if (finished) return parts
        if (!opened) {
          opened = true
          parts.push({ type: "response-metadata", modelId: chunk.model })
        }
        if (chunk.content !== "") {
          if (textId === undefined) {
            textId = yield* ids.generateId()
            parts.push({ type: "text-start", id: textId })
          }
          parts.push({ type: "text-delta", id: textId, delta: chunk.content })
        }
        if (chunk.finishReason === undefined) return parts
        finished = true
        const calls = yield* toolCallParts(chunk.toolCalls, method)
        return [
          ...parts,
          ...closeText(),
          ...calls,
          finishPart(chunk.finishReason, chunk.usage, calls.length > 0, {
            model: chunk.model,
            servedFrom: chunk.servedFrom ?? "provider"
          })
        ]
      })
    // A stream of this library always ends with a finish chunk; one that does not still ends its parts.
    const end = Stream.suspend(() =>
      Stream.fromIterable(finished ? [] : [...closeText(), finishPart(undefined, undefined, false, {})])
    )
    return chunks.pipe(Stream.mapEffect(onChunk), Stream.flattenIterables, Stream.concat(end))
  })))

// -----------------------------------------------------------------------------------------------------------------

/** The `LanguageModel` service over the `LlmClient` in context. */
export const make = (defaults: RequestFields): Effect.Effect<LanguageModel.Service, never, LlmClient> =>
  Effect.flatMap(LlmClient, (client) =>
    LanguageModel.make({
      generateText: (options) => {
        const method = options.responseFormat.type === "json" ? "generateObject" : "generateText"
        return requestOf(options, defaults, method).pipe(
          Effect.flatMap((request) => Effect.mapError(client.complete(request), (error) => toAiError(error, method))),
          Effect.flatMap((response) => partsOf(response, method))
        )
      },
      streamText: (options) =>
        Stream.unwrap(Effect.map(requestOf(options, defaults, "streamText"), (request) =>
          streamPartsOf(
            Stream.mapError(client.stream(request), (error) => toAiError(error, "streamText")),
            "streamText"
          )))
    }))
