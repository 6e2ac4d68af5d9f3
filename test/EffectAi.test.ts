import { AiError, LanguageModel, Model as AiModel, Prompt, Response, Tool, Toolkit } from "@effect/ai"
import { describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Schema, Stream, TestClock, Tracer } from "effect"
import * as EffectAi from "../src/EffectAi.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as Retry from "../src/Retry.js"

// -----------------------------------------------------------------------------------------------------------------
// A LanguageModel of our own: canned parts, recording what it was asked and the provider configs in context.
// -----------------------------------------------------------------------------------------------------------------

const openAiKey = "@effect/ai-openai/OpenAiLanguageModel/Config"
const anthropicKey = "@effect/ai-anthropic/AnthropicLanguageModel/Config"

interface Seen {
  readonly options: LanguageModel.ProviderOptions
  readonly openAi: unknown
  readonly anthropic: unknown
}

interface Script {
  readonly generate?: (options: LanguageModel.ProviderOptions) => Effect.Effect<Array<Response.PartEncoded>, AiError.AiError>
  readonly stream?: (options: LanguageModel.ProviderOptions) => Stream.Stream<Response.StreamPartEncoded, AiError.AiError>
}

const finish = (reason: Response.FinishReason = "stop", input = 10, output = 5): Response.FinishPartEncoded => ({
  type: "finish",
  reason,
  usage: { inputTokens: input, outputTokens: output, totalTokens: input + output }
})

const textReply = (text: string, modelId = "gpt-4o-2024-08-06"): Array<Response.PartEncoded> => [
  { type: "response-metadata", id: "resp_1", modelId },
  { type: "text", text },
  finish()
]

const fakeModel = (script: Script) =>
  Effect.gen(function*() {
    const seen = yield* Ref.make<ReadonlyArray<Seen>>([])
    const record = (options: LanguageModel.ProviderOptions) =>
      Effect.flatMap(Effect.context<never>(), (context) =>
        Ref.update(seen, (all) => [...all, {
          options,
          openAi: context.unsafeMap.get(openAiKey),
          anthropic: context.unsafeMap.get(anthropicKey)
        }]))
    const service = yield* LanguageModel.make({
      generateText: (options) =>
        Effect.zipRight(record(options), script.generate?.(options) ?? Effect.succeed(textReply("Hello there"))),
      streamText: (options) =>
        Stream.unwrap(Effect.as(record(options), script.stream?.(options) ?? Stream.empty))
    })
    return { service, seen: Ref.get(seen) }
  })

/** An LlmClient over a fake LanguageModel, and what the model saw. */
const bridged = (script: Script, options?: EffectAi.LlmClientOptions) =>
  Effect.gen(function*() {
    const { seen, service } = yield* fakeModel(script)
    const client = yield* EffectAi.makeLlmClient(options).pipe(
      Effect.provideService(LanguageModel.LanguageModel, service)
    )
    return { client, seen }
  })

const request = (model: string, extra: Partial<ConstructorParameters<typeof ChatRequest>[0]> = {}) =>
  new ChatRequest({ model, messages: [{ role: "user", content: "Say something" }], ...extra })

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), (c) => [...c])

const requestDetails = {
  method: "POST" as const,
  url: "https://api.example.com/v1/messages",
  urlParams: [],
  hash: Option.none(),
  headers: { "x-api-key": "sk-ant-SECRET-KEY-42", authorization: "Bearer sk-SECRET-KEY-42" }
}

const statusError = (status: number, body?: unknown, headers: Record<string, string> = {}) =>
  new AiError.HttpResponseError({
    module: "Test",
    method: "createMessage",
    reason: "StatusCode",
    request: requestDetails,
    response: { status, headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body, null, 2) })
  })

const failing = (error: AiError.AiError): Script => ({
  generate: () => Effect.fail(error),
  stream: () => Stream.fail(error)
})

const failureOf = (error: AiError.AiError, model = "m") =>
  Effect.flatMap(bridged(failing(error)), ({ client }) => Effect.flip(client.complete(request(model))))

// -----------------------------------------------------------------------------------------------------------------

describe("EffectAi.layerLlmClient (down)", () => {
  describe("request mapping", () => {
    it.effect("system, user, assistant tool calls and tool results become the prompt", () =>
      Effect.gen(function*() {
        const { client, seen } = yield* bridged({})
        yield* client.complete(
          new ChatRequest({
            model: "gpt-4o",
            messages: [
              { role: "system", content: "Be brief" },
              { role: "user", content: "Weather in Paris?" },
              {
                role: "assistant",
                content: "",
                toolCalls: [{ id: "call_1", name: "weather", arguments: "{\"city\":\"Paris\"}" }]
              },
              { role: "tool", content: "{\"celsius\":21}", toolCallId: "call_1" },
              { role: "tool", content: "plain text result", toolCallId: "call_2" }
            ]
          })
        )
        const [{ options }] = yield* seen
        const messages = options.prompt.content
        expect(messages.map((m) => m.role)).toEqual(["system", "user", "assistant", "tool", "tool"])
        expect(messages[0]).toMatchObject({ content: "Be brief" })
        expect(messages[1].content).toMatchObject([{ type: "text", text: "Weather in Paris?" }])
        expect(messages[2].content).toMatchObject([
          { type: "tool-call", id: "call_1", name: "weather", params: { city: "Paris" }, providerExecuted: false }
        ])
        expect(messages[3].content).toMatchObject([
          { type: "tool-result", id: "call_1", name: "weather", result: { celsius: 21 }, isFailure: false }
        ])
        expect(messages[4].content).toMatchObject([{ type: "tool-result", id: "call_2", result: "plain text result" }])
        expect(options.responseFormat).toEqual({ type: "text" })
        expect(options.tools).toEqual([])
      }))

    it.effect("tools keep their JSON Schema; the tool choice maps; tool calls are never run", () =>
      Effect.gen(function*() {
        const parameters = {
          type: "object",
          properties: { city: { type: "string" } },
          required: ["city"],
          additionalProperties: false
        }
        const { client, seen } = yield* bridged({
          generate: () =>
            Effect.succeed([
              { type: "response-metadata", modelId: "gpt-4o" },
              { type: "tool-call", id: "call_9", name: "weather", params: { city: "Oslo" } },
              finish("tool-calls")
            ])
        })
        const response = yield* client.complete(request("gpt-4o", {
          tools: [{ name: "weather", description: "Current weather", parameters }, { name: "time" }],
          toolChoice: { name: "weather" }
        }))
        const [{ options }] = yield* seen
        expect(options.tools.map((t) => t.name)).toEqual(["weather", "time"])
        expect(Tool.getJsonSchema(options.tools[0] as Tool.Tool<string, never>)).toEqual(parameters)
        expect(Tool.getDescription(options.tools[0] as Tool.Tool<string, never>)).toBe("Current weather")
        expect(Tool.getJsonSchema(options.tools[1] as Tool.Tool<string, never>)).toEqual({ type: "object", properties: {} })
        expect(options.toolChoice).toEqual({ tool: "weather" })
        expect(response.toolCalls).toEqual([{ id: "call_9", name: "weather", arguments: "{\"city\":\"Oslo\"}" }])
        expect(response.finishReason).toBe("tool_calls")
      }))

    it.effect("json_schema and json_object formats go through generateObject with the request's schema", () =>
      Effect.gen(function*() {
        const schema = { type: "object", properties: { answer: { type: "number" } }, required: ["answer"] }
        const { client, seen } = yield* bridged({ generate: () => Effect.succeed(textReply("{\"answer\":42}")) })
        const response = yield* client.complete(request("gpt-4o", {
          responseFormat: { type: "json_schema", jsonSchema: { name: "result", schema, strict: true } }
        }))
        yield* client.complete(request("gpt-4o", { responseFormat: { type: "json_object" } }))
        const [first, second] = yield* seen
        expect(response.content).toBe("{\"answer\":42}")
        expect(first.options.responseFormat.type).toBe("json")
        if (first.options.responseFormat.type !== "json") return
        expect(first.options.responseFormat.objectName).toBe("result")
        expect(Tool.getJsonSchemaFromSchemaAst(first.options.responseFormat.schema.ast)).toEqual(schema)
        expect(first.openAi).toMatchObject({ strict: true })
        expect(second.options.responseFormat).toMatchObject({ type: "json", objectName: "response" })
        expect(second.openAi).toMatchObject({ strict: false })
      }))

    it.effect("a JSON format answer that is not a JSON object is MalformedResponse", () =>
      Effect.gen(function*() {
        const { client } = yield* bridged({ generate: () => Effect.succeed(textReply("not json")) })
        const error = yield* Effect.flip(client.complete(request("gpt-4o", { responseFormat: { type: "json_object" } })))
        expect(error._tag).toBe("MalformedResponse")
      }))

    it.effect("settings go in the OpenAI and Anthropic configs, over a config already in context", () =>
      Effect.gen(function*() {
        const { client, seen } = yield* bridged({})
        const OpenAiConfig = Context.GenericTag<"OpenAiConfig", Record<string, unknown>>(openAiKey)
        yield* client.complete(request("claude-sonnet-4", {
          maxTokens: 300,
          temperature: 0.2,
          topP: 0.9,
          seed: 7,
          stop: ["END"],
          user: "tenant-1",
          metadata: { trace: "x" }
        })).pipe(Effect.provideService(OpenAiConfig, { store: false, temperature: 1 }))
        const [{ anthropic, openAi }] = yield* seen
        expect(openAi).toEqual({
          store: false,
          model: "claude-sonnet-4",
          max_output_tokens: 300,
          temperature: 0.2,
          top_p: 0.9,
          user: "tenant-1",
          strict: false
        })
        expect(anthropic).toEqual({
          model: "claude-sonnet-4",
          max_tokens: 300,
          temperature: 0.2,
          top_p: 0.9,
          stop_sequences: ["END"],
          metadata: { user_id: "tenant-1" }
        })
      }))

    it.effect("model: \"layer\" keeps the layer's model; configure adds settings that win", () =>
      Effect.gen(function*() {
        const Extra = Context.GenericTag<"Extra", Record<string, unknown>>(anthropicKey)
        const { client, seen } = yield* bridged({}, {
          model: "layer",
          configure: (req) => (effect) =>
            Effect.flatMap(Effect.serviceOption(Extra), (current) =>
              Effect.provideService(effect, Extra, {
                ...Option.getOrElse(current, () => ({})),
                max_tokens: (req.maxTokens ?? 0) * 2,
                top_k: 5
              }))
        })
        yield* client.complete(request("claude-sonnet-4", { maxTokens: 100 }))
        const [{ anthropic, openAi }] = yield* seen
        expect(anthropic).toEqual({ max_tokens: 200, top_k: 5 })
        expect(openAi).toEqual({ max_output_tokens: 100, strict: false })
      }))

    it.effect("a tool call whose arguments are not JSON is BadRequest, and nothing is sent", () =>
      Effect.gen(function*() {
        const { client, seen } = yield* bridged({})
        const error = yield* Effect.flip(client.complete(new ChatRequest({
          model: "gpt-4o",
          messages: [{ role: "assistant", content: "", toolCalls: [{ id: "c", name: "t", arguments: "{oops" }] }]
        })))
        expect(error).toMatchObject({ _tag: "BadRequest", param: "messages.0.toolCalls.0.arguments" })
        expect(yield* seen).toEqual([])
      }))
  })

  describe("response mapping", () => {
    it.effect("content, model from the response metadata, id, finish reason and usage", () =>
      Effect.gen(function*() {
        const { client } = yield* bridged({
          generate: () =>
            Effect.succeed([
              { type: "response-metadata", id: "msg_7", modelId: "claude-sonnet-4-20250514" },
              { type: "reasoning", text: "thinking…" },
              { type: "text", text: "Hello " },
              { type: "text", text: "world" },
              finish("length", 12, 34)
            ])
        })
        const response = yield* client.complete(request("claude-sonnet-4"))
        expect(response).toMatchObject({
          id: "msg_7",
          model: "claude-sonnet-4-20250514",
          content: "Hello world",
          finishReason: "length",
          usage: { inputTokens: 12, outputTokens: 34 },
          servedFrom: "provider"
        })
        expect(response.toolCalls).toBeUndefined()
      }))

    it.effect("without metadata the model is the one asked; a content-filter finish is ContentFiltered", () =>
      Effect.gen(function*() {
        const { client } = yield* bridged({
          generate: (options) =>
            Effect.succeed(options.prompt.content.length === 1
              ? [{ type: "text", text: "ok" }, finish("stop")]
              : [{ type: "text", text: "" }, finish("content-filter")])
        })
        expect((yield* client.complete(request("some-model"))).model).toBe("some-model")
        const filtered = yield* Effect.flip(client.complete(new ChatRequest({
          model: "some-model",
          messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }]
        })))
        expect(filtered._tag).toBe("ContentFiltered")
      }))
  })

  describe("streaming", () => {
    const parts = (...deltas: ReadonlyArray<string>): Array<Response.StreamPartEncoded> => [
      { type: "response-metadata", id: "r", modelId: "claude-sonnet-4-20250514" },
      { type: "text-start", id: "t" },
      ...deltas.map((delta): Response.StreamPartEncoded => ({ type: "text-delta", id: "t", delta })),
      { type: "text-end", id: "t" }
    ]

    it.effect("one chunk per non-empty delta, then a last chunk with finish reason, usage and tool calls", () =>
      Effect.gen(function*() {
        const { client } = yield* bridged({
          stream: () =>
            Stream.fromIterable<Response.StreamPartEncoded>([
              ...parts("", "Hel", "lo"),
              { type: "tool-params-start", id: "c1", name: "weather" },
              { type: "tool-params-delta", id: "c1", delta: "{\"city\":" },
              { type: "tool-params-end", id: "c1" },
              { type: "tool-call", id: "c1", name: "weather", params: { city: "Rome" } },
              finish("tool-calls", 3, 4)
            ])
        })
        const chunks = yield* collect(client.stream(request("claude-sonnet-4", { tools: [{ name: "weather" }] })))
        expect(chunks.map((c) => c.content)).toEqual(["Hel", "lo", ""])
        expect(chunks.every((c) => c.model === "claude-sonnet-4-20250514")).toBe(true)
        expect(chunks[0].finishReason).toBeUndefined()
        expect(chunks[2]).toMatchObject({
          finishReason: "tool_calls",
          usage: { inputTokens: 3, outputTokens: 4 },
          toolCalls: [{ id: "c1", name: "weather", arguments: "{\"city\":\"Rome\"}" }]
        })
      }))

    it.effect("a stream that ends before its finish is StreamTruncated with the chunks received", () =>
      Effect.gen(function*() {
        const { client } = yield* bridged({ stream: () => Stream.fromIterable(parts("a", "b")) })
        const error = yield* Effect.flip(collect(client.stream(request("m"))))
        expect(error).toMatchObject({ _tag: "StreamTruncated", receivedChunks: 2, model: "m" })
      }))

    it.effect("a body that breaks mid-stream is StreamTruncated; after the finish it is ignored", () =>
      Effect.gen(function*() {
        const broken = new AiError.HttpResponseError({
          module: "Test",
          method: "streamRequest",
          reason: "Decode",
          request: requestDetails,
          response: { status: 200, headers: {} }
        })
        const { client } = yield* bridged({
          stream: (options) =>
            Stream.concat(
              Stream.fromIterable([...parts("a"), ...(options.prompt.content.length > 1 ? [finish()] : [])]),
              Stream.fail(broken)
            )
        })
        const error = yield* Effect.flip(collect(client.stream(request("m"))))
        expect(error).toMatchObject({ _tag: "StreamTruncated", receivedChunks: 1 })
        const done = yield* collect(client.stream(new ChatRequest({
          model: "m",
          messages: [{ role: "user", content: "x" }, { role: "user", content: "y" }]
        })))
        expect(done.map((c) => c.finishReason)).toEqual([undefined, "stop"])
      }))

    it.effect("an error event is classified like its status (Anthropic overloaded_error → ServerError 529)", () =>
      Effect.gen(function*() {
        const { client } = yield* bridged({
          stream: () =>
            Stream.fromIterable<Response.StreamPartEncoded>([
              ...parts("a"),
              { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
            ])
        })
        const error = yield* Effect.flip(collect(client.stream(request("claude-sonnet-4"))))
        expect(error).toMatchObject({ _tag: "ServerError", status: 529 })
        const unknown = yield* bridged({
          stream: () => Stream.fromIterable<Response.StreamPartEncoded>([{ type: "error", error: { code: "x" } }])
        })
        expect((yield* Effect.flip(collect(unknown.client.stream(request("m")))))._tag).toBe("StreamTruncated")
      }))

    it.effect("a content-filter finish fails the stream with ContentFiltered", () =>
      Effect.gen(function*() {
        const { client } = yield* bridged({
          stream: () => Stream.fromIterable([...parts("x"), finish("content-filter")])
        })
        expect((yield* Effect.flip(collect(client.stream(request("m")))))._tag).toBe("ContentFiltered")
      }))

    it.effect("a JSON-format stream is answered whole, as one last chunk", () =>
      Effect.gen(function*() {
        const { client, seen } = yield* bridged({ generate: () => Effect.succeed(textReply("{\"a\":1}")) })
        const chunks = yield* collect(client.stream(request("m", { responseFormat: { type: "json_object" } })))
        expect(chunks).toHaveLength(1)
        expect(chunks[0]).toMatchObject({ content: "{\"a\":1}", finishReason: "stop" })
        expect((yield* seen)[0].options.responseFormat.type).toBe("json")
      }))

    it.effect("settings reach the provider config of a stream too", () =>
      Effect.gen(function*() {
        const { client, seen } = yield* bridged({ stream: () => Stream.fromIterable([...parts("x"), finish()]) })
        yield* collect(client.stream(request("gpt-4o", { maxTokens: 64 })))
        expect((yield* seen)[0].openAi).toMatchObject({ model: "gpt-4o", max_output_tokens: 64 })
      }))
  })

  describe("errors", () => {
    const table: ReadonlyArray<readonly [number, unknown, LlmError.Tag]> = [
      [400, { error: { code: "invalid_value", type: "invalid_request_error", param: "temperature" } }, "BadRequest"],
      [400, { error: { code: "context_length_exceeded" } }, "ContextTooLong"],
      [400, { error: { code: "content_filter" } }, "ContentFiltered"],
      [400, { type: "error", error: { type: "invalid_request_error", message: "prompt is too long: 210000 tokens > 200000 maximum" } }, "ContextTooLong"],
      [400, { type: "error", error: { type: "invalid_request_error", message: "Your credit balance is too low" } }, "QuotaExhausted"],
      [400, { type: "error", error: { type: "invalid_request_error", message: "Output blocked by content filtering policy" } }, "ContentFiltered"],
      [402, { type: "error", error: { type: "billing_error", message: "billing" } }, "QuotaExhausted"],
      [429, { type: "error", error: { type: "billing_error", message: "billing" } }, "QuotaExhausted"],
      [401, { type: "error", error: { type: "authentication_error", message: "invalid x-api-key" } }, "AuthError"],
      [403, undefined, "AuthError"],
      [404, { type: "error", error: { type: "not_found_error", message: "model: x" } }, "ModelNotFound"],
      [408, undefined, "ServerError"],
      [409, undefined, "ServerError"],
      [413, { type: "error", error: { type: "request_too_large", message: "too large" } }, "BadRequest"],
      [422, undefined, "BadRequest"],
      [429, { type: "error", error: { type: "rate_limit_error", message: "slow down" } }, "RateLimited"],
      [429, { error: { code: "insufficient_quota", type: "insufficient_quota" } }, "QuotaExhausted"],
      [500, { type: "error", error: { type: "api_error", message: "oops" } }, "ServerError"],
      [504, { type: "error", error: { type: "timeout_error", message: "timeout" } }, "ServerError"],
      [502, undefined, "ServerError"],
      [503, undefined, "ServerError"],
      [529, { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }, "ServerError"]
    ]
    for (const [status, body, tag] of table) {
      it.effect(`HTTP ${status} ${JSON.stringify(body ?? "")} → ${tag}`, () =>
        Effect.gen(function*() {
          const error = yield* failureOf(statusError(status, body), "claude-sonnet-4")
          expect(error._tag).toBe(tag)
          expect(error.model).toBe("claude-sonnet-4")
          if (error._tag === "ServerError") expect(error.status).toBe(status)
        }))
    }

    it.effect("the error body may come as the description (a JSON string) too", () =>
      Effect.gen(function*() {
        const error = yield* failureOf(new AiError.HttpResponseError({
          module: "Test",
          method: "createResponse",
          reason: "StatusCode",
          request: requestDetails,
          response: { status: 400, headers: {} },
          description: JSON.stringify({ error: { code: "context_length_exceeded" } })
        }))
        expect(error._tag).toBe("ContextTooLong")
      }))

    it.effect("Retry-After: retry-after-ms, then retry-after seconds or HTTP date (on the Effect clock)", () =>
      Effect.gen(function*() {
        yield* TestClock.setTime(Date.UTC(2026, 0, 1, 12, 0, 0))
        const wait = (headers: Record<string, string>, status = 429) =>
          Effect.map(failureOf(statusError(status, undefined, headers)), (e) =>
            Option.map(LlmError.retryAfter(e), Duration.toMillis))
        expect(yield* wait({ "retry-after-ms": "1500" })).toEqual(Option.some(1500))
        expect(yield* wait({ "retry-after": "2" })).toEqual(Option.some(2000))
        expect(yield* wait({ "Retry-After": "0.5" }, 503)).toEqual(Option.some(500))
        expect(yield* wait({ "retry-after": "Thu, 01 Jan 2026 12:00:30 GMT" }, 529)).toEqual(Option.some(30_000))
        expect(yield* wait({ "retry-after-ms": "250", "retry-after": "9" })).toEqual(Option.some(250))
        expect(yield* wait({ "retry-after": "soon" })).toEqual(Option.none())
        expect(yield* wait({ "retry-after": "Thu, 01 Jan 2026 11:00:00 GMT" })).toEqual(Option.none())
      }))

    it.effect("undecodable bodies, transport failures, malformed input and output", () =>
      Effect.gen(function*() {
        const response = (reason: "Decode" | "EmptyBody") =>
          new AiError.HttpResponseError({
            module: "Test",
            method: "createResponse",
            reason,
            request: requestDetails,
            response: { status: 200, headers: {} }
          })
        const request = (reason: "Transport" | "Encode" | "InvalidUrl", cause?: unknown) =>
          new AiError.HttpRequestError({ module: "Test", method: "createResponse", reason, request: requestDetails, cause })
        const refused = Object.assign(new TypeError("fetch failed"), {
          cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" })
        })
        expect((yield* failureOf(response("Decode")))._tag).toBe("MalformedResponse")
        expect((yield* failureOf(response("EmptyBody")))._tag).toBe("MalformedResponse")
        expect(yield* failureOf(request("Transport", refused))).toMatchObject({
          _tag: "ConnectionError",
          reason: "ECONNREFUSED"
        })
        expect((yield* failureOf(request("Encode")))._tag).toBe("BadRequest")
        expect((yield* failureOf(request("InvalidUrl")))._tag).toBe("BadRequest")
        const output = new AiError.MalformedOutput({ module: "Test", method: "x", description: "Parameters: SECRET" })
        const outputError = yield* failureOf(output)
        expect(outputError._tag).toBe("MalformedResponse")
        expect(JSON.stringify(outputError)).not.toContain("SECRET")
        expect((yield* failureOf(new AiError.MalformedInput({ module: "Test", method: "x" })))._tag).toBe("BadRequest")
        expect((yield* failureOf(new AiError.UnknownError({ module: "Test", method: "x" })))._tag)
          .toBe("MalformedResponse")
      }))

    it.effect("an AiError carrying an LlmError (from a LanguageModel of this module) gives that LlmError back", () =>
      Effect.gen(function*() {
        const budget = new LlmError.BudgetExceeded({ scope: "user", requested: 10, remaining: 1 })
        const error = yield* failureOf(new AiError.UnknownError({ module: "EffectAi", method: "x", cause: budget }))
        expect(error._tag === "BudgetExceeded" && [error.scope, error.requested, error.remaining]).toEqual(["user", 10, 1])
      }))

    it.effect("no key, header, URL or body text reaches the mapped errors (JSON and String)", () =>
      Effect.gen(function*() {
        const prompt = "my confidential prompt"
        const cases: ReadonlyArray<AiError.AiError> = [
          statusError(400, { error: { message: `bad: ${prompt}`, code: "x" } }, { authorization: "Bearer sk-SECRET-KEY-42" }),
          statusError(401, { type: "error", error: { type: "authentication_error", message: "sk-ant-SECRET-KEY-42" } }),
          statusError(429, undefined, { "retry-after": "1", "x-api-key": "sk-ant-SECRET-KEY-42" }),
          statusError(529, { type: "error", error: { type: "overloaded_error", message: prompt } }),
          new AiError.HttpRequestError({
            module: "Test",
            method: "x",
            reason: "Transport",
            request: requestDetails,
            cause: new Error(`fetch failed ${prompt} sk-SECRET-KEY-42`)
          }),
          new AiError.MalformedOutput({ module: "Test", method: "x", description: prompt })
        ]
        for (const aiError of cases) {
          const stream = yield* bridged(failing(aiError))
          const errors = [
            yield* failureOf(aiError),
            yield* Effect.flip(collect(stream.client.stream(request("m"))))
          ]
          for (const error of errors) {
            for (const text of [JSON.stringify(error), String(error), error.message, JSON.stringify(Exit.fail(error))]) {
              expect(text).not.toContain("SECRET-KEY")
              expect(text).not.toContain(prompt)
              expect(text).not.toContain("api.example.com")
            }
          }
        }
      }))
  })

  describe("metrics, spans, interruption", () => {
    it.effect("one request and its usage are recorded per call; the call's span carries the models and token counts", () =>
      Effect.gen(function*() {
        const spans: Array<{ name: string; attributes: Map<string, unknown> }> = []
        const { client } = yield* bridged({
          generate: () => Effect.succeed(textReply("hi", "metrics-model-answered")),
          stream: () =>
            Stream.fromIterable<Response.StreamPartEncoded>([
              { type: "response-metadata", modelId: "metrics-model-answered" },
              { type: "text-delta", id: "t", delta: "hi" },
              finish()
            ])
        })
        const before = yield* LlmMetrics.snapshot
        yield* client.complete(request("metrics-model")).pipe(Effect.withTracer(capturingTracer(spans)))
        yield* collect(client.stream(request("metrics-model"))).pipe(Effect.withTracer(capturingTracer(spans)))
        const after = yield* LlmMetrics.snapshot
        expect(after.requests - before.requests).toBe(2)
        expect(after.inputTokens - before.inputTokens).toBe(20)
        expect(after.outputTokens - before.outputTokens).toBe(10)
        const ours = spans.filter((s) => s.name === "chat metrics-model")
        expect(ours).toHaveLength(2)
        for (const span of ours) {
          expect(span.attributes.get("gen_ai.request.model")).toBe("metrics-model")
          expect(span.attributes.get("gen_ai.response.model")).toBe("metrics-model-answered")
          expect(span.attributes.get("gen_ai.usage.output_tokens")).toBe(5)
          expect(span.attributes.get("gen_ai.provider.name")).toBe("custom")
        }
      }))

    it.effect("the provider name comes from an AiModel's ProviderName, or the provider option", () =>
      Effect.gen(function*() {
        const spans: Array<{ name: string; attributes: Map<string, unknown> }> = []
        const { service } = yield* fakeModel({})
        const asAiModel = Layer.merge(
          Layer.succeed(LanguageModel.LanguageModel, service),
          Layer.succeed(AiModel.ProviderName, "anthropic")
        )
        yield* LlmClient.complete(request("named-1")).pipe(
          Effect.provide(EffectAi.layerLlmClient().pipe(Layer.provide(asAiModel))),
          Effect.withTracer(capturingTracer(spans))
        )
        yield* LlmClient.complete(request("named-2")).pipe(
          Effect.provide(EffectAi.layerLlmClientByModel({ "named-2": asAiModel }, { provider: "gcp.vertex_ai" })),
          Effect.withTracer(capturingTracer(spans))
        )
        const names = spans.filter((s) => s.name.startsWith("chat ")).map((s) => s.attributes.get("gen_ai.provider.name"))
        expect(names).toEqual(["anthropic", "gcp.vertex_ai"])
      }))

    it.effect("interrupting a call interrupts the provider's request (complete and stream)", () =>
      Effect.gen(function*() {
        const interrupted = yield* Ref.make(0)
        const hang = Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))
        const { client } = yield* bridged({ generate: () => hang, stream: () => Stream.fromEffect(hang) })
        const complete = yield* Effect.fork(client.complete(request("m")))
        const stream = yield* Effect.fork(collect(client.stream(request("m"))))
        yield* TestClock.adjust("1 second")
        yield* Fiber.interrupt(complete)
        yield* Fiber.interrupt(stream)
        expect(yield* Ref.get(interrupted)).toBe(2)
      }))
  })

  describe("layerLlmClientByModel", () => {
    it.effect("routes each model to its layer (keeping the layer's model); an unrouted model is ModelNotFound", () =>
      Effect.gen(function*() {
        const gpt = yield* fakeModel({ generate: () => Effect.succeed(textReply("from gpt", "gpt-4o-2024-08-06")) })
        const claude = yield* fakeModel({
          generate: () => Effect.succeed(textReply("from claude", "claude-sonnet-4-20250514"))
        })
        const Routed = EffectAi.layerLlmClientByModel({
          "gpt-4o": Layer.succeed(LanguageModel.LanguageModel, gpt.service),
          "claude-sonnet-4": Layer.succeed(LanguageModel.LanguageModel, claude.service)
        })
        const [a, b, missing] = yield* Effect.all([
          LlmClient.complete(request("gpt-4o")),
          LlmClient.complete(request("claude-sonnet-4")),
          Effect.flip(LlmClient.complete(request("gemini-2.5-pro")))
        ]).pipe(Effect.provide(Routed))
        expect([a.content, a.model]).toEqual(["from gpt", "gpt-4o-2024-08-06"])
        expect([b.content, b.model]).toEqual(["from claude", "claude-sonnet-4-20250514"])
        expect(missing).toMatchObject({ _tag: "ModelNotFound", model: "gemini-2.5-pro" })
        expect((yield* gpt.seen)).toHaveLength(1)
        expect((yield* claude.seen)[0].anthropic).toEqual({})
      }))

    it.effect("builds each route layer once, sharing sub-layers with the application", () =>
      Effect.gen(function*() {
        const builds = yield* Ref.make(0)
        const model = yield* fakeModel({})
        const Shared = Layer.effectDiscard(Ref.update(builds, (n) => n + 1))
        const route = Layer.succeed(LanguageModel.LanguageModel, model.service).pipe(Layer.provide(Shared))
        const Routed = EffectAi.layerLlmClientByModel({ a: route, b: route })
        yield* LlmClient.complete(request("a")).pipe(Effect.provide(Layer.merge(Routed, Shared)))
        expect(yield* Ref.get(builds)).toBe(1)
      }))

    it("validates the routes and the options, listing every bad path", () => {
      const bad = (f: () => unknown) => {
        try {
          f()
        } catch (error) {
          return error
        }
        throw new Error("no error")
      }
      const empty = bad(() => EffectAi.layerLlmClientByModel({}))
      expect(empty).toBeInstanceOf(InvalidOptions)
      const notLayer = bad(() =>
        EffectAi.layerLlmClientByModel({ m: "nope" as unknown as Layer.Layer<LanguageModel.LanguageModel> })
      ) as InvalidOptions
      expect(notLayer.issues.map((i) => i.path)).toEqual(["m"])
      const options = bad(() =>
        EffectAi.layerLlmClient({ model: "both", modle: 1 } as unknown as EffectAi.LlmClientOptions)
      ) as InvalidOptions
      expect(options.issues.map((i) => i.path).sort()).toEqual(["model", "modle"])
    })
  })
})

// -----------------------------------------------------------------------------------------------------------------

const Weather = Tool.make("GetWeather", {
  description: "The weather in a city",
  parameters: { city: Schema.String },
  success: Schema.Struct({ celsius: Schema.Number })
})
const WeatherKit = Toolkit.make(Weather)
const WeatherHandlers = WeatherKit.toLayer({ GetWeather: ({ city }) => Effect.succeed({ celsius: city.length }) })

const overFake = (script: FakeLlm.Script) =>
  EffectAi.layerLanguageModel.pipe(Layer.provideMerge(FakeLlm.layer(script)))

describe("EffectAi.layerLanguageModel (up)", () => {
  it.effect("generateText: text, finish reason, usage, model metadata; the request as FakeLlm saw it", () =>
    Effect.gen(function*() {
      const response = yield* LanguageModel.generateText({
        prompt: [
          { role: "system", content: "Be brief" },
          { role: "user", content: [{ type: "text", text: "Hello" }] }
        ]
      })
      expect(response.text).toBe("Hi!")
      expect(response.finishReason).toBe("stop")
      expect(response.usage.outputTokens).toBe(3)
      expect(response.usage.inputTokens).toBe(9)
      const meta = response.content.find((p) => p.type === "response-metadata")
      expect(meta?.type === "response-metadata" && Option.getOrUndefined(meta.modelId)).toBe(EffectAi.defaultModel)
      const finishPart = response.content.find((p) => p.type === "finish")
      expect(finishPart?.metadata).toEqual({ "effect-llm-resilience": { model: "default", servedFrom: "provider" } })
      const [call] = yield* FakeLlm.calls
      expect(call.request.model).toBe("default")
      expect(call.request.messages).toEqual([
        { role: "system", content: "Be brief" },
        { role: "user", content: "Hello" }
      ])
    }).pipe(Effect.provide(overFake(FakeLlm.reply("Hi!", { usage: { inputTokens: 9, outputTokens: 3 } })))))

  it.effect("withRequest and model() set the model and settings; the call's fields win", () =>
    Effect.gen(function*() {
      yield* LanguageModel.generateText({ prompt: "a" }).pipe(
        EffectAi.withRequest({ temperature: 0, user: "tenant-7", metadata: { a: "1" } }),
        EffectAi.withRequest({ maxTokens: 50, temperature: 1 })
      )
      yield* LanguageModel.generateText({ prompt: "b" }).pipe(EffectAi.withRequest({ model: "gpt-4.1" }))
      const [first, second] = yield* FakeLlm.calls
      expect(first.request).toMatchObject({ model: "gpt-4o-mini", temperature: 0, user: "tenant-7", maxTokens: 50, seed: 1 })
      expect(second.request.model).toBe("gpt-4.1")
    }).pipe(
      Effect.provide(EffectAi.model("gpt-4o-mini", { seed: 1 }).pipe(Layer.provideMerge(FakeLlm.layer(FakeLlm.echo))))
    ))

  it.effect("generateObject with a Schema, with Retry underneath: the first attempt's 503 is retried", () =>
    Effect.gen(function*() {
      const Answer = Schema.Struct({ city: Schema.String, celsius: Schema.Number }).annotations({
        description: "The weather report"
      })
      const fiber = yield* Effect.fork(LanguageModel.generateObject({ prompt: "Weather?", schema: Answer, objectName: "report" }))
      yield* TestClock.adjust("10 seconds")
      const response = yield* Fiber.join(fiber)
      expect(response.value).toEqual({ city: "Oslo", celsius: 4 })
      const calls = yield* FakeLlm.calls
      expect(calls).toHaveLength(2)
      expect(calls[0].request.responseFormat).toEqual({
        type: "json_schema",
        jsonSchema: {
          name: "report",
          description: "The weather report",
          schema: {
            type: "object",
            description: "The weather report",
            properties: { city: { type: "string" }, celsius: { type: "number" } },
            required: ["city", "celsius"],
            additionalProperties: false
          }
        }
      })
    }).pipe(Effect.provide(EffectAi.layerLanguageModel.pipe(
      Layer.provide(LlmClient.layerWith(Retry.policy({ maxRetries: 2, baseDelay: "100 millis" }))),
      Layer.provideMerge(FakeLlm.layer([
        FakeLlm.fail(new LlmError.ServerError({ status: 503 })),
        FakeLlm.reply("{\"city\":\"Oslo\",\"celsius\":4}")
      ]))
    ))))

  it.effect("a Toolkit round trip: the tool call is resolved by its handler, the result goes back as a tool message", () =>
    Effect.gen(function*() {
      const first = yield* LanguageModel.generateText({ prompt: "Weather in Oslo?", toolkit: WeatherKit })
      expect(first.toolCalls.map((c) => [c.name, c.params])).toEqual([["GetWeather", { city: "Oslo" }]])
      expect(first.toolResults.map((r) => r.result)).toEqual([{ celsius: 4 }])
      expect(first.finishReason).toBe("tool-calls")
      const history = Prompt.merge(Prompt.make("Weather in Oslo?"), Prompt.fromResponseParts(first.content))
      const second = yield* LanguageModel.generateText({ prompt: history, toolkit: WeatherKit })
      expect(second.text).toBe("4 degrees in Oslo")
      const calls = yield* FakeLlm.calls
      expect(calls[0].request.tools).toEqual([{
        name: "GetWeather",
        description: "The weather in a city",
        parameters: {
          type: "object",
          properties: { city: { type: "string" } },
          required: ["city"],
          additionalProperties: false
        }
      }])
      expect(calls[0].request.toolChoice).toBe("auto")
      expect(calls[1].request.messages.slice(1)).toEqual([
        { role: "assistant", content: "", toolCalls: [{ id: "call_1", name: "GetWeather", arguments: "{\"city\":\"Oslo\"}" }] },
        { role: "tool", content: "{\"celsius\":4}", toolCallId: "call_1", name: "GetWeather" }
      ])
    }).pipe(
      Effect.provide(WeatherHandlers),
      Effect.provide(overFake([
        FakeLlm.reply("", { toolCalls: [{ id: "call_1", name: "GetWeather", arguments: "{\"city\":\"Oslo\"}" }] }),
        FakeLlm.reply("4 degrees in Oslo")
      ]))
    ))

  it.effect("tool choice: required, a named tool, oneOf", () =>
    Effect.gen(function*() {
      yield* LanguageModel.generateText({ prompt: "a", toolkit: WeatherKit, toolChoice: "required" })
      yield* LanguageModel.generateText({ prompt: "b", toolkit: WeatherKit, toolChoice: { tool: "GetWeather" } })
      yield* LanguageModel.generateText({ prompt: "c", toolkit: WeatherKit, toolChoice: { mode: "required", oneOf: ["GetWeather"] } })
      yield* LanguageModel.generateText({ prompt: "d", toolkit: WeatherKit, toolChoice: "none" })
      const calls = yield* FakeLlm.calls
      expect(calls.map((c) => c.request.toolChoice)).toEqual(["required", { name: "GetWeather" }, "required", "none"])
    }).pipe(Effect.provide(WeatherHandlers), Effect.provide(overFake(FakeLlm.reply("ok")))))

  it.effect("streamText: metadata, text-start, one delta per chunk, text-end, finish with usage", () =>
    Effect.gen(function*() {
      const parts = yield* collect(LanguageModel.streamText({ prompt: "Hi" }))
      expect(parts.map((p) => p.type)).toEqual([
        "response-metadata",
        "text-start",
        "text-delta",
        "text-delta",
        "text-end",
        "finish"
      ])
      expect(parts.flatMap((p) => (p.type === "text-delta" ? [p.delta] : []))).toEqual(["Hel", "lo"])
      const last = parts[parts.length - 1]
      expect(last.type === "finish" && last.reason).toBe("stop")
      expect(last.type === "finish" && last.usage.outputTokens).toBeGreaterThan(0)
    }).pipe(Effect.provide(overFake(FakeLlm.stream(["Hel", "lo"])))))

  it.effect("streamText with a Toolkit: the tool call on the last chunk is resolved", () =>
    Effect.gen(function*() {
      const parts = yield* collect(LanguageModel.streamText({ prompt: "Weather?", toolkit: WeatherKit }))
      expect(parts.filter((p) => p.type === "tool-call").map((p) => p.type === "tool-call" && p.params)).toEqual([
        { city: "Rome" }
      ])
      expect(parts.filter((p) => p.type === "tool-result").map((p) => p.type === "tool-result" && p.result)).toEqual([
        { celsius: 4 }
      ])
    }).pipe(
      Effect.provide(WeatherHandlers),
      Effect.provide(overFake(FakeLlm.reply("", { toolCalls: [{ id: "c", name: "GetWeather", arguments: "{\"city\":\"Rome\"}" }] })))
    ))

  it.effect("an LlmError surfaces as an AiError whose cause is the LlmError (llmError gives it back)", () =>
    Effect.gen(function*() {
      const budget = yield* Effect.flip(LanguageModel.generateText({ prompt: "a" }))
      expect(budget._tag).toBe("UnknownError")
      expect(Option.map(EffectAi.llmError(budget), (e) => e._tag)).toEqual(Option.some("BudgetExceeded"))
      const malformed = yield* Effect.flip(LanguageModel.generateText({ prompt: "b" }))
      expect(malformed._tag).toBe("MalformedOutput")
      expect(Option.map(EffectAi.llmError(malformed), (e) => e._tag)).toEqual(Option.some("MalformedResponse"))
      const all = yield* Effect.flip(Stream.runDrain(LanguageModel.streamText({ prompt: "c" })))
      expect(Option.map(EffectAi.llmError(all), (e) => e._tag)).toEqual(Option.some("AllModelsFailed"))
      expect(EffectAi.llmError(new AiError.UnknownError({ module: "x", method: "y" }))).toEqual(Option.none())
      expect(EffectAi.llmError(new Error("x"))).toEqual(Option.none())
    }).pipe(Effect.provide(overFake([
      FakeLlm.fail(new LlmError.BudgetExceeded({ scope: "user", requested: 100, remaining: 5 })),
      FakeLlm.fail(new LlmError.MalformedResponse({ reason: "bad" })),
      FakeLlm.fail(new LlmError.AllModelsFailed({ failures: [new LlmError.ServerError({ status: 503 })] }))
    ]))))

  it.effect("a file part or a provider-defined tool is MalformedInput, and nothing is sent", () =>
    Effect.gen(function*() {
      const file = yield* Effect.flip(LanguageModel.generateText({
        prompt: [{ role: "user", content: [{ type: "file", mediaType: "image/png", data: "aGk=" }] }]
      }))
      expect(file._tag).toBe("MalformedInput")
      const badFields = yield* Effect.flip(
        LanguageModel.generateText({ prompt: "x" }).pipe(Effect.provideService(EffectAi.RequestOptions, { temperature: 9 }))
      )
      expect(badFields._tag).toBe("MalformedInput")
      expect(badFields.message).toContain("temperature")
      expect(yield* FakeLlm.calls).toEqual([])
    }).pipe(Effect.provide(overFake(FakeLlm.reply("x")))))

  it("withRequest and model() validate their fields", () => {
    expect(() => EffectAi.withRequest({ temperature: 3 })).toThrow(InvalidOptions)
    expect(() => EffectAi.withRequest(Effect.void, { user: 1 } as unknown as EffectAi.RequestFields)).toThrow(InvalidOptions)
    expect(() => EffectAi.model("m", { temprature: 1 } as EffectAi.RequestFields)).toThrow(InvalidOptions)
  })

  it.effect("up over down: an @effect/ai model below the policies, the policies as a LanguageModel above", () =>
    Effect.gen(function*() {
      const { service } = yield* fakeModel({
        generate: () => Effect.fail(statusError(529, { type: "error", error: { type: "overloaded_error", message: "x" } }))
      })
      const error = yield* Effect.flip(LanguageModel.generateText({ prompt: "a" })).pipe(
        Effect.provide(EffectAi.layerLanguageModel.pipe(
          Layer.provide(EffectAi.layerLlmClient()),
          Layer.provide(Layer.succeed(LanguageModel.LanguageModel, service))
        ))
      )
      expect(Option.map(EffectAi.llmError(error), (e) => [e._tag, e._tag === "ServerError" && e.status]))
        .toEqual(Option.some(["ServerError", 529]))
      expect(JSON.stringify(error)).not.toContain("SECRET-KEY")
    }))
})

const capturingTracer = (spans: Array<{ name: string; attributes: Map<string, unknown> }>) =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const attributes = new Map<string, unknown>()
      spans.push({ name, attributes })
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span-${spans.length}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end: () => {},
        attribute: (key, value) => void attributes.set(key, value),
        event: () => {},
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })

