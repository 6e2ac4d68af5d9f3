/**
 * Down: a `ChatRequest` as the arguments of `LanguageModel.generateText` / `generateObject` / `streamText` (the
 * prompt, a toolkit of the request's tools whose calls are never resolved here, the tool choice, the JSON format),
 * and the request's generation settings as the OpenAI (Responses) and Anthropic (Messages) provider configs.
 */
import type * as LanguageModel from "@effect/ai/LanguageModel"
import * as Prompt from "@effect/ai/Prompt"
import * as Tool from "@effect/ai/Tool"
import type * as Toolkit from "@effect/ai/Toolkit"
import { Context, Effect, Either, Schema } from "effect"
import type { ChatMessage, ChatRequest, ToolDefinition } from "../Llm.js"
import { BadRequest, type ModelFailure } from "../LlmError.js"

/** Every tool of a request: any name, any parameters. */
export type Tools = Record<string, Tool.Any>

/** The JSON object a `responseFormat` asks for, as a Schema whose JSON Schema is the request's own. */
export type ObjectSchema = Schema.Schema<
  { readonly [key: string]: unknown },
  { readonly [key: string]: unknown }
>

/** What `LanguageModel` is called with for one request. */
export interface Generation {
  readonly prompt: Prompt.Prompt
  readonly toolkit: Toolkit.WithHandler<Tools>
  readonly toolChoice: LanguageModel.ToolChoice<string> | undefined
  readonly format: { readonly objectName: string; readonly schema: ObjectSchema } | undefined
}

const AnyObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })

// A Schema that accepts any JSON object and whose JSON Schema is `jsonSchema` (an annotation with a `type`
// replaces the generated one whole).
const objectSchema = (jsonSchema: Readonly<Record<string, unknown>>, description?: string): ObjectSchema =>
  AnyObject.annotations({
    jsonSchema: "type" in jsonSchema ? jsonSchema : { type: "object", ...jsonSchema },
    ...(description === undefined ? {} : { description })
  })

const emptyParameters = { type: "object", properties: {} }

const toolOf = (definition: ToolDefinition): Tool.Any =>
  Tool.make(definition.name, { description: definition.description }).setParameters(
    // The parameters are validated by the provider, not here: any object passes, with the request's JSON Schema.
    objectSchema(definition.parameters ?? emptyParameters) as unknown as typeof Tool.EmptyParams
  )

// Tool calls are returned to the caller, never run here (`disableToolCallResolution: true`).
const toolkitOf = (definitions: ReadonlyArray<ToolDefinition>): Toolkit.WithHandler<Tools> => ({
  tools: Object.fromEntries(definitions.map((definition) => [definition.name, toolOf(definition)])),
  handle: (name) => Effect.dieMessage(`The tool "${String(name)}" is not run by the LlmClient bridge`)
})

const toToolChoice = (choice: NonNullable<ChatRequest["toolChoice"]>): LanguageModel.ToolChoice<string> =>
  typeof choice === "string" ? choice : { tool: choice.name }

const formatOf = (format: ChatRequest["responseFormat"]): Generation["format"] => {
  if (format === undefined || format.type === "text") return undefined
  if (format.type !== "json_schema") return { objectName: "response", schema: objectSchema({ type: "object" }) }
  // OpenAI's `json_schema` shape ({ name, schema, description, strict }), or a bare JSON Schema.
  const { jsonSchema } = format
  const inner = jsonSchema.schema
  const schema = typeof inner === "object" && inner !== null ? inner as Record<string, unknown> : jsonSchema
  const name = typeof jsonSchema.name === "string" && jsonSchema.name.length > 0 ? jsonSchema.name : "response"
  const description = typeof jsonSchema.description === "string" ? jsonSchema.description : undefined
  return { objectName: name, schema: objectSchema(schema, description) }
}

/** JSON text as a value; text that is not JSON stays a string. */
const jsonOrText = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

type Converted = Either.Either<Prompt.Message, ModelFailure>

const assistantMessage = (message: ChatMessage, index: number, model: string): Converted => {
  const parts: Array<Prompt.AssistantMessagePart> = []
  if (message.content !== "" || (message.toolCalls ?? []).length === 0) {
    parts.push(Prompt.textPart({ text: message.content }))
  }
  const calls = message.toolCalls ?? []
  for (let j = 0; j < calls.length; j++) {
    const call = calls[j]
    let params: unknown
    try {
      params = call.arguments.trim() === "" ? {} : JSON.parse(call.arguments)
    } catch {
      return Either.left(new BadRequest({
        model,
        param: `messages.${index}.toolCalls.${j}.arguments`,
        reason: "a tool call's arguments are not JSON"
      }))
    }
    parts.push(Prompt.toolCallPart({ id: call.id, name: call.name, params, providerExecuted: false }))
  }
  return Either.right(Prompt.assistantMessage({ content: parts }))
}

const toolMessage = (message: ChatMessage, toolNames: ReadonlyMap<string, string>): Converted => {
  const id = message.toolCallId ?? ""
  return Either.right(Prompt.toolMessage({
    content: [Prompt.toolResultPart({
      id,
      name: toolNames.get(id) ?? message.name ?? "",
      isFailure: false,
      result: jsonOrText(message.content),
      providerExecuted: false
    })]
  }))
}

const messageOf = (
  message: ChatMessage,
  index: number,
  model: string,
  toolNames: ReadonlyMap<string, string>
): Converted => {
  switch (message.role) {
    case "system":
      return Either.right(Prompt.systemMessage({ content: message.content }))
    case "user":
      return Either.right(Prompt.userMessage({ content: [Prompt.textPart({ text: message.content })] }))
    case "assistant":
      return assistantMessage(message, index, model)
    case "tool":
      return toolMessage(message, toolNames)
  }
}

/** The `LanguageModel` arguments for a request, or BadRequest when a message cannot be expressed. */
export const toGeneration = (request: ChatRequest): Either.Either<Generation, ModelFailure> => {
  // A tool result names its tool in @effect/ai; a ChatMessage links it by call id only.
  const toolNames = new Map<string, string>()
  for (const message of request.messages) {
    for (const call of message.toolCalls ?? []) toolNames.set(call.id, call.name)
  }
  const messages: Array<Prompt.Message> = []
  for (let i = 0; i < request.messages.length; i++) {
    const converted = messageOf(request.messages[i], i, request.model, toolNames)
    if (Either.isLeft(converted)) return Either.left(converted.left)
    messages.push(converted.right)
  }
  return Either.right({
    prompt: Prompt.fromMessages(messages),
    toolkit: toolkitOf(request.tools ?? []),
    toolChoice: request.toolChoice === undefined ? undefined : toToolChoice(request.toolChoice),
    format: formatOf(request.responseFormat)
  })
}

// -----------------------------------------------------------------------------------------------------------------
// Provider configs. The providers read their config from the context by key (`Config.getOrUndefined`), so the
// bridge sets it without importing them. A config already in the context (`withConfigOverride`) is kept, field by
// field, under the request's settings.
// -----------------------------------------------------------------------------------------------------------------

/** The context keys of the provider configs the bridge knows. */
export const configKeys = {
  openAi: "@effect/ai-openai/OpenAiLanguageModel/Config",
  anthropic: "@effect/ai-anthropic/AnthropicLanguageModel/Config"
} as const

type ConfigRecord = Readonly<Record<string, unknown>>

const OpenAiConfig = Context.GenericTag<"EffectAi/OpenAiConfig", ConfigRecord>(configKeys.openAi)
const AnthropicConfig = Context.GenericTag<"EffectAi/AnthropicConfig", ConfigRecord>(configKeys.anthropic)

const defined = (record: Record<string, unknown>): ConfigRecord =>
  Object.fromEntries(Object.entries(record).filter(([, value]) => value !== undefined))

/** The request's settings in `@effect/ai-openai`'s config (the Responses API has no seed, stop or penalties). */
export const openAiConfig = (request: ChatRequest, forwardModel: boolean): ConfigRecord => {
  const format = request.responseFormat
  return defined({
    model: forwardModel ? request.model : undefined,
    max_output_tokens: request.maxTokens,
    temperature: request.temperature,
    top_p: request.topP,
    user: request.user,
    // Chat Completions sends tools and JSON schemas non-strict unless asked: so does the bridge.
    strict: format?.type === "json_schema" && format.jsonSchema.strict === true
  })
}

/** The request's settings in `@effect/ai-anthropic`'s config (the Messages API has no seed or penalties). */
export const anthropicConfig = (request: ChatRequest, forwardModel: boolean): ConfigRecord =>
  defined({
    model: forwardModel ? request.model : undefined,
    max_tokens: request.maxTokens,
    temperature: request.temperature,
    top_p: request.topP,
    stop_sequences: request.stop === undefined ? undefined : [...request.stop],
    metadata: request.user === undefined ? undefined : { user_id: request.user }
  })

const merged = <I>(tag: Context.Tag<I, ConfigRecord>, config: ConfigRecord) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.serviceOption(tag), (current) =>
    Effect.provideService(effect, tag, { ...(current._tag === "Some" ? current.value : {}), ...config }))

/** Runs `effect` with the request's settings in the OpenAI and Anthropic provider configs. */
export const withProviderConfig = (request: ChatRequest, forwardModel: boolean) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(
    merged(OpenAiConfig, openAiConfig(request, forwardModel)),
    merged(AnthropicConfig, anthropicConfig(request, forwardModel))
  )
