import { LanguageModel, Tool, Toolkit } from "@effect/ai"
import type { AiError } from "@effect/ai"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { expect, layer } from "@effect/vitest"
import { FetchHttpClient } from "@effect/platform"
import { Chunk, Effect, Fiber, Layer, Redacted, Schema, Stream } from "effect"
import * as ChaosServer from "../src/ChaosServer.js"

// The real @effect/ai-anthropic client against the ChaosServer's Anthropic Messages dialect.

const perModel: Record<string, ChaosServer.Faults> = {
  s400: { errors: [{ status: 400, rate: 1 }] },
  s401: { errors: [{ status: 401, rate: 1 }] },
  s403: { errors: [{ status: 403, rate: 1 }] },
  s404: { errors: [{ status: 404, rate: 1 }] },
  s429: { errors: [{ status: 429, rate: 1, retryAfter: { seconds: 7 } }] },
  s429ms: { errors: [{ status: 429, rate: 1, retryAfter: { ms: 1500 } }] },
  s500: { errors: [{ status: 500, rate: 1 }] },
  s529: { errors: [{ status: 529, rate: 1, retryAfter: { date: 30 } }] },
  context: { errors: [{ status: 400, rate: 1, code: "context_length_exceeded" }] },
  cut: { cutRate: 1, cutAfterChunks: 2 },
  malformed: { malformedRate: 1 },
  filtered: { contentFilterRate: 1 },
  hang: { hangRate: 1 },
  drip: { firstTokenDelay: 30, chunkDelay: 2 }
}

const Chaos = ChaosServer.layer({ seed: 21, words: 6, perModel })

const Anthropic = Layer.unwrapEffect(Effect.map(ChaosServer.ChaosServer, (server) =>
  AnthropicClient.layer({ apiUrl: server.url, apiKey: Redacted.make("sk-ant-chaos") }))).pipe(
    Layer.provide(FetchHttpClient.layer)
  )

const Live = Anthropic.pipe(Layer.provideMerge(Chaos))

const generate = (model: string, prompt = "hello") =>
  LanguageModel.generateText({ prompt }).pipe(Effect.provide(AnthropicLanguageModel.model(model)))

const stream = (model: string, prompt = "hello") =>
  LanguageModel.streamText({ prompt }).pipe(Stream.runCollect, Effect.map(Chunk.toArray), Effect.provide(AnthropicLanguageModel.model(model)))

const rawMessages = (server: ChaosServer.Service, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`${server.url}/v1/messages`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    return { status: response.status, headers: response.headers, text: await response.text() }
  })

const asHttpError = (error: AiError.AiError) => {
  expect(error._tag).toBe("HttpResponseError")
  if (error._tag !== "HttpResponseError") throw new Error("expected an HttpResponseError")
  return error
}

const GetWeather = Tool.make("GetWeather", {
  description: "The weather in a city",
  parameters: { city: Schema.NonEmptyString, days: Schema.Int.pipe(Schema.between(1, 7)), unit: Schema.Literal("c", "f") },
  success: Schema.Struct({ celsius: Schema.Number })
})
const Weather = Toolkit.make(GetWeather)
const WeatherHandlers = Weather.toLayer({ GetWeather: () => Effect.succeed({ celsius: 21 }) })

layer(Live, { excludeTestServices: true })("ChaosServer: Anthropic Messages through @effect/ai-anthropic", (it) => {
  it.effect("a JSON answer decodes, with Anthropic's usage and the same text as the other dialects", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const response = yield* generate("claude-sonnet-4")
      expect(response.text.split(" ")).toHaveLength(6)
      expect(response.finishReason).toBe("stop")
      expect(response.usage.inputTokens).toBeGreaterThan(0)
      expect(response.usage.outputTokens).toBe(Math.ceil(response.text.length / 4))
      const chat = yield* Effect.promise(() =>
        fetch(`${server.baseURL}/chat/completions`, {
          method: "POST",
          body: JSON.stringify({ model: "m", messages: [{ role: "user", content: "hello" }] })
        }).then((r) => r.json() as Promise<{ choices: Array<{ message: { content: string } }> }>)
      )
      expect(response.text).toBe(chat.choices[0].message.content)
    }))

  it.effect("a stream decodes: text deltas add up to the JSON answer, the finish part has the usage", () =>
    Effect.gen(function* () {
      const full = yield* generate("claude-sonnet-4", "stream me")
      const parts = yield* stream("claude-sonnet-4", "stream me")
      const text = parts.flatMap((part) => part.type === "text-delta" ? [part.delta] : []).join("")
      expect(text).toBe(full.text)
      const finish = parts.find((part) => part.type === "finish")
      expect(finish).toMatchObject({ reason: "stop", usage: { inputTokens: full.usage.inputTokens, outputTokens: full.usage.outputTokens } })
    }))

  it.effect("the SSE stream is Anthropic's: event lines, message_start … message_stop", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const reply = yield* rawMessages(server, { model: "m", max_tokens: 64, stream: true, messages: [{ role: "user", content: "hi" }] })
      expect(reply.headers.get("content-type")).toContain("text/event-stream")
      const events = reply.text.trim().split("\n\n").map((frame) => {
        const [event, data] = frame.split("\n")
        return { event: event.slice("event: ".length), data: JSON.parse(data.slice("data: ".length)) }
      })
      expect(events.every((e) => e.event === e.data.type)).toBe(true)
      const types = events.map((e) => e.event)
      expect(types.slice(0, 3)).toEqual(["message_start", "content_block_start", "ping"])
      expect(types.slice(-3)).toEqual(["content_block_stop", "message_delta", "message_stop"])
      expect(types.slice(3, -3).every((t) => t === "content_block_delta")).toBe(true)
      expect(events[0].data.message).toMatchObject({ role: "assistant", content: [], stop_reason: null, usage: { output_tokens: 1 } })
      expect(events[0].data.message.usage.input_tokens).toBeGreaterThan(0)
      expect(events.at(-2)?.data).toMatchObject({ delta: { stop_reason: "end_turn" }, usage: { output_tokens: expect.any(Number) } })
    }))

  it.effect("max_tokens cuts the answer with stop_reason max_tokens; a request without max_tokens is a 400", () =>
    Effect.gen(function* () {
      const short = yield* generate("claude-sonnet-4").pipe(AnthropicLanguageModel.withConfigOverride({ max_tokens: 2 }))
      expect(short.finishReason).toBe("length")
      expect(short.text.length).toBeLessThanOrEqual(8)
      const server = yield* ChaosServer.ChaosServer
      const missing = yield* rawMessages(server, { model: "m", messages: [{ role: "user", content: "hi" }] })
      expect(missing.status).toBe(400)
      expect(JSON.parse(missing.text)).toMatchObject({ type: "error", error: { type: "invalid_request_error" } })
      expect(JSON.parse(missing.text).error.message).toContain("max_tokens")
    }))

  it.effect("errors arrive with their status, Anthropic's error type and Retry-After headers", () =>
    Effect.gen(function* () {
      const cases = [
        ["s400", 400, "invalid_request_error"],
        ["s401", 401, "authentication_error"],
        ["s403", 403, "permission_error"],
        ["s404", 404, "not_found_error"],
        ["s429", 429, "rate_limit_error"],
        ["s500", 500, "api_error"],
        ["s529", 529, "overloaded_error"]
      ] as const
      for (const [model, status, type] of cases) {
        const error = asHttpError(yield* Effect.flip(generate(model)))
        expect(error.response.status).toBe(status)
        expect(error.response.headers["request-id"]).toMatch(/^req_chaos_\d+$/)
        expect(`${error.body ?? ""}${error.description ?? ""}`).toContain(type)
      }
      expect(asHttpError(yield* Effect.flip(generate("s429"))).response.headers["retry-after"]).toBe("7")
      expect(asHttpError(yield* Effect.flip(generate("s429ms"))).response.headers["retry-after-ms"]).toBe("1500")
      const at = Date.parse(asHttpError(yield* Effect.flip(generate("s529"))).response.headers["retry-after"] ?? "")
      expect(at - Date.now()).toBeGreaterThan(25_000)
      const context = asHttpError(yield* Effect.flip(generate("context")))
      expect(context.body).toContain("prompt is too long")
    }))

  it.effect("errors of a stream arrive before any event", () =>
    Effect.gen(function* () {
      const error = asHttpError(yield* Effect.flip(stream("s529")))
      expect(error.response.status).toBe(529)
    }))

  it.effect("the raw error body is Anthropic's", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const reply = yield* rawMessages(server, { model: "s529", max_tokens: 8, messages: [{ role: "user", content: "hi" }] })
      expect(reply.status).toBe(529)
      expect(JSON.parse(reply.text)).toEqual({
        type: "error",
        error: { type: "overloaded_error", message: "Overloaded" },
        request_id: reply.headers.get("request-id")
      })
    }))

  it.effect("a cut stream fails after the text sent so far; a cut or malformed body fails to decode", () =>
    Effect.gen(function* () {
      const deltas: Array<string> = []
      const cut = yield* LanguageModel.streamText({ prompt: "hello" }).pipe(
        Stream.tap((part) => Effect.sync(() => part.type === "text-delta" && deltas.push(part.delta))),
        Stream.runDrain,
        Effect.flip,
        Effect.provide(AnthropicLanguageModel.model("cut"))
      )
      // cutAfterChunks: 2, so two words arrived before the connection closed.
      expect(deltas).toHaveLength(2)
      expect(cut).toMatchObject({ _tag: "HttpResponseError", reason: "Decode" })
      // The JSON bodies fail in the client's JSON parsing (a Decode error on a 200), not in its Schema.
      expect(yield* Effect.flip(generate("cut"))).toMatchObject({ _tag: "HttpResponseError", reason: "Decode", response: { status: 200 } })
      expect(yield* Effect.flip(generate("malformed"))).toMatchObject({ _tag: "HttpResponseError", reason: "Decode", response: { status: 200 } })
      // A broken event fails the event Schema.
      expect((yield* Effect.flip(stream("malformed")))._tag).toBe("MalformedOutput")
    }))

  it.effect("a filtered answer is a refusal (content-filter), in JSON and streams", () =>
    Effect.gen(function* () {
      const response = yield* generate("filtered")
      expect(response.finishReason).toBe("content-filter")
      expect(response.text).toBe("")
      const parts = yield* stream("filtered")
      expect(parts.find((part) => part.type === "finish")).toMatchObject({ reason: "content-filter" })
    }))

  it.effect("interrupting the client aborts a hanging request (the server counts it)", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const before = yield* server.stats
      const fiber = yield* Effect.fork(generate("hang"))
      while ((yield* server.stats).inFlight === before.inFlight) yield* Effect.sleep("2 millis")
      yield* Fiber.interrupt(fiber)
      let after = yield* server.stats
      for (let i = 0; i < 200 && after.aborted === before.aborted; i++) {
        yield* Effect.sleep("2 millis")
        after = yield* server.stats
      }
      expect(after.aborted).toBe(before.aborted + 1)
      expect(after.byDialect.messages).toBeGreaterThan(before.byDialect.messages ?? 0)
    }))

  it.effect("firstTokenDelay delays the first text, not the opening events", () =>
    Effect.gen(function* () {
      const start = performance.now()
      const firstAt: Array<number> = []
      yield* LanguageModel.streamText({ prompt: "hello" }).pipe(
        Stream.tap((part) => Effect.sync(() => part.type === "text-delta" && firstAt.push(performance.now() - start))),
        Stream.runDrain,
        Effect.provide(AnthropicLanguageModel.model("drip"))
      )
      expect(firstAt[0]).toBeGreaterThanOrEqual(28)
    }))

  it.effect("a tool round trip: a tool_use block decodes with the tool's schema, then the tool result gets text", () =>
    Effect.gen(function* () {
      const first = yield* LanguageModel.generateText({ prompt: "What is the weather in Paris? Use GetWeather.", toolkit: Weather })
      expect(first.finishReason).toBe("tool-calls")
      expect(first.toolCalls).toHaveLength(1)
      const call = first.toolCalls[0]
      expect(call.name).toBe("GetWeather")
      expect(call.id).toMatch(/^toolu_chaos_\d+$/)
      expect(call.params).toEqual({ city: expect.any(String), days: 1, unit: "c" })
      expect(first.toolResults[0]?.result).toEqual({ celsius: 21 })
      // The next turn carries the call and its result: the model answers in text.
      const second = yield* LanguageModel.generateText({
        prompt: [
          { role: "user", content: "What is the weather in Paris? Use GetWeather." },
          { role: "assistant", content: [{ type: "tool-call", id: call.id, name: call.name, params: call.params, providerExecuted: false }] },
          { role: "tool", content: [{ type: "tool-result", id: call.id, name: call.name, result: { celsius: 21 }, isFailure: false, providerExecuted: false }] }
        ],
        toolkit: Weather
      })
      expect(second.finishReason).toBe("stop")
      expect(second.toolCalls).toHaveLength(0)
      expect(second.text.length).toBeGreaterThan(0)
    }).pipe(Effect.provide([AnthropicLanguageModel.model("claude-sonnet-4"), WeatherHandlers])))

  it.effect("a streamed tool call arrives as input_json_delta pieces and decodes", () =>
    Effect.gen(function* () {
      const parts = yield* LanguageModel.streamText({ prompt: "Use GetWeather for Oslo", toolkit: Weather }).pipe(
        Stream.runCollect,
        Effect.map(Chunk.toArray)
      )
      expect(parts.filter((part) => part.type === "tool-params-delta").length).toBeGreaterThan(1)
      const call = parts.find((part) => part.type === "tool-call")
      expect(call).toMatchObject({ name: "GetWeather", params: { city: expect.any(String), days: 1, unit: "c" } })
      expect(parts.find((part) => part.type === "finish")).toMatchObject({ reason: "tool-calls" })
    }).pipe(Effect.provide([AnthropicLanguageModel.model("claude-sonnet-4"), WeatherHandlers])))

  it.effect("generateObject: the forced tool's input is a value of the schema", () =>
    Effect.gen(function* () {
      const Answer = Schema.Struct({ title: Schema.String, score: Schema.Number, tags: Schema.Array(Schema.String) })
      const response = yield* LanguageModel.generateObject({ prompt: "Rate this", schema: Answer, objectName: "rating" })
      expect(response.value).toEqual({ title: expect.any(String), score: 1, tags: [expect.any(String)] })
    }).pipe(Effect.provide(AnthropicLanguageModel.model("claude-sonnet-4"))))
})
