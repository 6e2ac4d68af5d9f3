import { LanguageModel, Tool, Toolkit } from "@effect/ai"
import type { AiError } from "@effect/ai"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { expect, layer } from "@effect/vitest"
import { FetchHttpClient } from "@effect/platform"
import { Chunk, Effect, Fiber, Layer, Redacted, Schema, Stream } from "effect"
import * as ChaosServer from "../src/ChaosServer.js"

// The real @effect/ai-openai client (the Responses API) against the ChaosServer's Responses dialect.

const perModel: Record<string, ChaosServer.Faults> = {
  s400: { errors: [{ status: 400, rate: 1 }] },
  s401: { errors: [{ status: 401, rate: 1 }] },
  s404: { errors: [{ status: 404, rate: 1 }] },
  s429: { errors: [{ status: 429, rate: 1, retryAfter: { seconds: 4 } }] },
  s429ms: { errors: [{ status: 429, rate: 1, retryAfter: { ms: 750 } }] },
  quota: { errors: [{ status: 429, rate: 1, code: "insufficient_quota" }] },
  s503: { errors: [{ status: 503, rate: 1, retryAfter: { date: 20 } }] },
  cut: { cutRate: 1, cutAfterChunks: 3 },
  malformed: { malformedRate: 1 },
  filtered: { contentFilterRate: 1 },
  hang: { hangRate: 1 }
}

const Chaos = ChaosServer.layer({ seed: 33, words: 7, perModel })

const OpenAi = Layer.unwrapEffect(Effect.map(ChaosServer.ChaosServer, (server) =>
  OpenAiClient.layer({ apiUrl: server.baseURL, apiKey: Redacted.make("sk-chaos") }))).pipe(
    Layer.provide(FetchHttpClient.layer)
  )

const Live = OpenAi.pipe(Layer.provideMerge(Chaos))

const generate = (model: string, prompt = "hello") =>
  LanguageModel.generateText({ prompt }).pipe(Effect.provide(OpenAiLanguageModel.model(model)))

const stream = (model: string, prompt = "hello") =>
  LanguageModel.streamText({ prompt }).pipe(Stream.runCollect, Effect.map(Chunk.toArray), Effect.provide(OpenAiLanguageModel.model(model)))

const raw = (server: ChaosServer.Service, path: string, body: unknown) =>
  Effect.promise(async () => {
    const response = await fetch(`${server.baseURL}${path}`, {
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

const Lookup = Tool.make("Lookup", {
  description: "Looks a term up",
  parameters: { term: Schema.String, limit: Schema.Int.pipe(Schema.greaterThan(2)), exact: Schema.Boolean },
  success: Schema.Struct({ hits: Schema.Number })
})
const Search = Toolkit.make(Lookup)
const SearchHandlers = Search.toLayer({ Lookup: () => Effect.succeed({ hits: 3 }) })

layer(Live, { excludeTestServices: true })("ChaosServer: OpenAI Responses through @effect/ai-openai", (it) => {
  it.effect("a JSON answer decodes, with usage, and says the same as chat completions", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const response = yield* generate("gpt-4o")
      expect(response.text.split(" ")).toHaveLength(7)
      expect(response.finishReason).toBe("stop")
      expect(response.usage.outputTokens).toBe(Math.ceil(response.text.length / 4))
      expect(response.usage.totalTokens).toBe((response.usage.inputTokens ?? 0) + (response.usage.outputTokens ?? 0))
      const chat = JSON.parse((yield* raw(server, "/chat/completions", { model: "m", messages: [{ role: "user", content: "hello" }] })).text)
      expect(response.text).toBe(chat.choices[0].message.content)
      const body = JSON.parse((yield* raw(server, "/responses", { model: "gpt-4o", input: "hello" })).text)
      expect(body).toMatchObject({
        object: "response",
        status: "completed",
        output: [{ type: "message", role: "assistant", status: "completed", content: [{ type: "output_text", annotations: [] }] }],
        usage: { input_tokens: expect.any(Number), output_tokens: expect.any(Number), total_tokens: expect.any(Number) }
      })
    }))

  it.effect("a stream decodes: response.* events, deltas add up to the answer, usage on the finish", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const full = yield* generate("gpt-4o", "stream please")
      const parts = yield* stream("gpt-4o", "stream please")
      expect(parts.flatMap((part) => part.type === "text-delta" ? [part.delta] : []).join("")).toBe(full.text)
      expect(parts.find((part) => part.type === "finish")).toMatchObject({
        reason: "stop",
        usage: { inputTokens: full.usage.inputTokens, outputTokens: full.usage.outputTokens }
      })
      const reply = yield* raw(server, "/responses", { model: "m", input: "hi", stream: true })
      const events = reply.text.trim().split("\n\n").map((frame) => {
        const [event, data] = frame.split("\n")
        return { event: event.slice("event: ".length), data: JSON.parse(data.slice("data: ".length)) }
      })
      expect(events.every((e) => e.event === e.data.type)).toBe(true)
      expect(events.map((e) => e.data.sequence_number)).toEqual(events.map((_, i) => i))
      const types = events.map((e) => e.event)
      expect(types.slice(0, 4)).toEqual(["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added"])
      expect(types.slice(-4)).toEqual(["response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed"])
      expect(types.slice(4, -4).every((t) => t === "response.output_text.delta")).toBe(true)
    }))

  it.effect("max_output_tokens cuts the answer: status incomplete, finish reason length", () =>
    Effect.gen(function* () {
      const short = yield* generate("gpt-4o").pipe(OpenAiLanguageModel.withConfigOverride({ max_output_tokens: 2 }))
      expect(short.finishReason).toBe("length")
      expect(short.text.length).toBeLessThanOrEqual(8)
      const parts = yield* stream("gpt-4o").pipe(OpenAiLanguageModel.withConfigOverride({ max_output_tokens: 2 }))
      expect(parts.find((part) => part.type === "finish")).toMatchObject({ reason: "length" })
    }))

  it.effect("errors arrive with their status, OpenAI's error body and Retry-After headers", () =>
    Effect.gen(function* () {
      const cases = [
        ["s400", 400, "invalid_request_error"],
        ["s401", 401, "invalid_api_key"],
        ["s404", 404, "model_not_found"],
        ["s429", 429, "rate_limit_exceeded"],
        ["quota", 429, "insufficient_quota"],
        ["s503", 503, "server_error"]
      ] as const
      for (const [model, status, code] of cases) {
        const error = asHttpError(yield* Effect.flip(generate(model)))
        expect(error.response.status).toBe(status)
        expect(error.response.headers["x-request-id"]).toMatch(/^req_chaos_\d+$/)
        expect(`${error.body ?? ""}${error.description ?? ""}`).toContain(code)
      }
      expect(asHttpError(yield* Effect.flip(generate("s429"))).response.headers["retry-after"]).toBe("4")
      expect(asHttpError(yield* Effect.flip(generate("s429ms"))).response.headers["retry-after-ms"]).toBe("750")
      const at = Date.parse(asHttpError(yield* Effect.flip(generate("s503"))).response.headers["retry-after"] ?? "")
      expect(at - Date.now()).toBeGreaterThan(15_000)
      expect(asHttpError(yield* Effect.flip(stream("s429"))).response.status).toBe(429)
    }))

  it.effect("a cut stream fails after the text sent so far; a cut or malformed body fails to decode", () =>
    Effect.gen(function* () {
      const deltas: Array<string> = []
      const cut = yield* LanguageModel.streamText({ prompt: "hello" }).pipe(
        Stream.tap((part) => Effect.sync(() => part.type === "text-delta" && deltas.push(part.delta))),
        Stream.runDrain,
        Effect.flip,
        Effect.provide(OpenAiLanguageModel.model("cut"))
      )
      expect(deltas).toHaveLength(3)
      expect(cut).toMatchObject({ _tag: "HttpResponseError", reason: "Decode" })
      expect(yield* Effect.flip(generate("cut"))).toMatchObject({ _tag: "HttpResponseError", reason: "Decode", response: { status: 200 } })
      expect(yield* Effect.flip(generate("malformed"))).toMatchObject({ _tag: "HttpResponseError", reason: "Decode", response: { status: 200 } })
    }))

  it.effect("a malformed event is skipped by the client: the stream ends without a finish", () =>
    Effect.gen(function* () {
      // @effect/ai-openai drops events it cannot decode (OpenAI sends keep-alives it does not know), so a broken
      // event shows as a stream with no text and no finish part: a bridge must call that truncated.
      const parts = yield* stream("malformed")
      expect(parts.some((part) => part.type === "finish")).toBe(false)
      expect(parts.some((part) => part.type === "text-delta")).toBe(false)
    }))

  it.effect("a filtered answer is incomplete with reason content_filter", () =>
    Effect.gen(function* () {
      const response = yield* generate("filtered")
      expect(response.finishReason).toBe("content-filter")
      expect(response.text).toBe("")
      expect((yield* stream("filtered")).find((part) => part.type === "finish")).toMatchObject({ reason: "content-filter" })
    }))

  it.effect("interrupting the client aborts a hanging request (the server counts it)", () =>
    Effect.gen(function* () {
      const server = yield* ChaosServer.ChaosServer
      const before = yield* server.stats
      const fiber = yield* Effect.fork(stream("hang"))
      while ((yield* server.stats).inFlight === before.inFlight) yield* Effect.sleep("2 millis")
      yield* Fiber.interrupt(fiber)
      let after = yield* server.stats
      for (let i = 0; i < 200 && after.aborted === before.aborted; i++) {
        yield* Effect.sleep("2 millis")
        after = yield* server.stats
      }
      expect(after.aborted).toBe(before.aborted + 1)
      expect(after.byDialect.responses).toBeGreaterThan(before.byDialect.responses ?? 0)
    }))

  it.effect("a tool round trip: a function_call item decodes with the tool's schema, the tool result gets text", () =>
    Effect.gen(function* () {
      const first = yield* LanguageModel.generateText({ prompt: "Please use Lookup for effect", toolkit: Search })
      expect(first.finishReason).toBe("tool-calls")
      const call = first.toolCalls[0]
      expect(call).toMatchObject({ name: "Lookup", params: { term: expect.any(String), limit: 3, exact: true } })
      expect(first.toolResults[0]?.result).toEqual({ hits: 3 })
      const second = yield* LanguageModel.generateText({
        prompt: [
          { role: "user", content: "Please use Lookup for effect" },
          { role: "assistant", content: [{ type: "tool-call", id: call.id, name: call.name, params: call.params, providerExecuted: false }] },
          { role: "tool", content: [{ type: "tool-result", id: call.id, name: call.name, result: { hits: 3 }, isFailure: false, providerExecuted: false }] }
        ],
        toolkit: Search
      })
      expect(second.finishReason).toBe("stop")
      expect(second.text.length).toBeGreaterThan(0)
      // A prompt that names no tool gets text under the default "named" mode.
      expect((yield* LanguageModel.generateText({ prompt: "hello", toolkit: Search })).toolCalls).toHaveLength(0)
    }).pipe(Effect.provide([OpenAiLanguageModel.model("gpt-4o"), SearchHandlers])))

  it.effect("a streamed function call arrives in argument deltas and decodes", () =>
    Effect.gen(function* () {
      const parts = yield* LanguageModel.streamText({ prompt: "hi", toolkit: Search, toolChoice: "required" }).pipe(
        Stream.runCollect,
        Effect.map(Chunk.toArray)
      )
      expect(parts.filter((part) => part.type === "tool-params-delta").length).toBeGreaterThan(1)
      expect(parts.find((part) => part.type === "tool-call")).toMatchObject({ name: "Lookup", params: { limit: 3 } })
      expect(parts.find((part) => part.type === "finish")).toMatchObject({ reason: "tool-calls" })
    }).pipe(Effect.provide([OpenAiLanguageModel.model("gpt-4o"), SearchHandlers])))

  it.effect("generateObject: the output text is a value of the json_schema format", () =>
    Effect.gen(function* () {
      const Plan = Schema.Struct({
        steps: Schema.Array(Schema.Struct({ title: Schema.String, minutes: Schema.Int })),
        level: Schema.Literal("easy", "hard"),
        note: Schema.optional(Schema.String)
      })
      const response = yield* LanguageModel.generateObject({ prompt: "Plan my day", schema: Plan, objectName: "plan" })
      expect(response.value).toMatchObject({ steps: [{ title: expect.any(String), minutes: 1 }], level: "easy" })
    }).pipe(Effect.provide(OpenAiLanguageModel.model("gpt-4o"))))
})
