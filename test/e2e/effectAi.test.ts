import { LanguageModel, Tool, Toolkit } from "@effect/ai"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { OpenAiClient, OpenAiLanguageModel } from "@effect/ai-openai"
import { FetchHttpClient } from "@effect/platform"
import { expect, layer } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Option, Redacted, Schema, Stream, Tracer } from "effect"
import * as Net from "node:net"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"
import * as EffectAi from "../../src/EffectAi.js"
import * as Fallback from "../../src/Fallback.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import type * as LlmError from "../../src/LlmError.js"
import * as LlmMetrics from "../../src/LlmMetrics.js"
import * as Pricing from "../../src/Pricing.js"
import * as ResponseCache from "../../src/ResponseCache.js"
import * as Retry from "../../src/Retry.js"
import * as TokenBudget from "../../src/TokenBudget.js"

// The real @effect/ai-openai (Responses API) and @effect/ai-anthropic (Messages API) clients, under the bridge, against
// one ChaosServer.

const openAiKey = "sk-openai-SECRET-4c1d7e"
const anthropicKey = "sk-ant-SECRET-9b3f2a"

const statusCases: ReadonlyArray<readonly [string, ChaosServer.ErrorFault, LlmError.Tag]> = [
  ["s400", { status: 400, rate: 1 }, "BadRequest"],
  ["s400-context", { status: 400, rate: 1, code: "context_length_exceeded" }, "ContextTooLong"],
  ["s400-filter", { status: 400, rate: 1, code: "content_filter" }, "ContentFiltered"],
  ["s401", { status: 401, rate: 1 }, "AuthError"],
  ["s403", { status: 403, rate: 1 }, "AuthError"],
  ["s404", { status: 404, rate: 1 }, "ModelNotFound"],
  ["s408", { status: 408, rate: 1 }, "ServerError"],
  ["s409", { status: 409, rate: 1 }, "ServerError"],
  ["s422", { status: 422, rate: 1 }, "BadRequest"],
  ["s429", { status: 429, rate: 1 }, "RateLimited"],
  ["s429-quota", { status: 429, rate: 1, code: "insufficient_quota" }, "QuotaExhausted"],
  ["s500", { status: 500, rate: 1 }, "ServerError"],
  ["s502", { status: 502, rate: 1 }, "ServerError"],
  ["s503", { status: 503, rate: 1 }, "ServerError"],
  ["s529", { status: 529, rate: 1 }, "ServerError"],
  ["s529-overloaded", { status: 529, rate: 1, code: "overloaded_error" }, "ServerError"]
]

const perModel: Record<string, ChaosServer.Faults> = {
  ...Object.fromEntries(statusCases.map(([model, fault]) => [model, { errors: [fault] }])),
  "after-seconds": { errors: [{ status: 429, rate: 1, retryAfter: { seconds: 2 } }] },
  "after-ms": { errors: [{ status: 503, rate: 1, retryAfter: { ms: 1500 } }] },
  "after-date": { errors: [{ status: 529, rate: 1, retryAfter: { date: 30 } }] },
  cut: { cutRate: 1, cutAfterChunks: 3 },
  malformed: { malformedRate: 1 },
  filtered: { contentFilterRate: 1 },
  hang: { hangRate: 1 },
  // the OpenAI side of the cross-provider fallback is down
  "gpt-4o": { outage: { status: 503 } }
}

const Chaos = ChaosServer.layer({ seed: 11, words: 6, perModel })

/** The two providers' LanguageModel layers, pointed at the ChaosServer. */
class Models extends Context.Tag("test/EffectAi/Models")<Models, {
  readonly openAi: (model: string) => Layer.Layer<LanguageModel.LanguageModel>
  readonly anthropic: (model: string) => Layer.Layer<LanguageModel.LanguageModel>
}>() {}

const ModelsLive = Layer.effect(
  Models,
  Effect.gen(function*() {
    const server = yield* ChaosServer.ChaosServer
    const openAiClient = OpenAiClient.layer({ apiUrl: server.baseURL, apiKey: Redacted.make(openAiKey) })
    const anthropicClient = AnthropicClient.layer({ apiUrl: server.url, apiKey: Redacted.make(anthropicKey) })
    return {
      openAi: (model) =>
        OpenAiLanguageModel.model(model).pipe(Layer.provide(openAiClient), Layer.provide(FetchHttpClient.layer)),
      anthropic: (model) =>
        AnthropicLanguageModel.model(model).pipe(Layer.provide(anthropicClient), Layer.provide(FetchHttpClient.layer))
    }
  })
)

const Live = ModelsLive.pipe(Layer.provideMerge(Chaos))

type Dialect = "openAi" | "anthropic"
const dialects: ReadonlyArray<Dialect> = ["openAi", "anthropic"]

/** An LlmClient over one provider (`model: "request"`: one layer serves every model name). */
const clientOf = (dialect: Dialect) =>
  Effect.flatMap(Models, (models) =>
    EffectAi.makeLlmClient().pipe(
      Effect.provide(dialect === "openAi" ? models.openAi("gpt-4o-mini") : models.anthropic("claude-sonnet-4"))
    ))

/** An `LlmClient` layer over one provider, for policies. */
const clientLayer = (dialect: Dialect) => Layer.effect(LlmClient.LlmClient, clientOf(dialect))

const request = (model: string, extra: Partial<ConstructorParameters<typeof ChatRequest>[0]> = {}) =>
  new ChatRequest({ model, messages: [{ role: "user", content: "Tell me something" }], ...extra })

const collect = <A, E, R>(stream: Stream.Stream<A, E, R>) => Effect.map(Stream.runCollect(stream), (c) => [...c])

const waitFor = <A>(read: Effect.Effect<A>, done: (a: A) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      const value = yield* read
      if (done(value)) return value
      yield* Effect.sleep("2 millis")
    }
    return yield* Effect.dieMessage("condition not reached")
  })

const noSecrets = (error: unknown) => {
  for (const text of [JSON.stringify(error), String(error), JSON.stringify(Exit.fail(error))]) {
    expect(text).not.toContain("SECRET")
    expect(text).not.toContain("127.0.0.1")
  }
}

const GetWeather = Tool.make("GetWeather", {
  description: "The weather in a city",
  parameters: { city: Schema.NonEmptyString },
  success: Schema.Struct({ celsius: Schema.Number })
})
const Weather = Toolkit.make(GetWeather)
const WeatherHandlers = Weather.toLayer({ GetWeather: () => Effect.succeed({ celsius: 21 }) })

layer(Live, { excludeTestServices: true })("EffectAi over @effect/ai-openai and @effect/ai-anthropic (ChaosServer)", (it) => {
  for (const dialect of dialects) {
    it.effect(`${dialect}: a completion maps back (content, usage, finish reason, the answering model)`, () =>
      Effect.gen(function*() {
        const client = yield* clientOf(dialect)
        const response = yield* client.complete(request("claude-3-5-haiku-20241022", { maxTokens: 200, temperature: 0 }))
        expect(response.content.split(" ")).toHaveLength(6)
        expect(response.finishReason).toBe("stop")
        expect(response.usage.inputTokens).toBeGreaterThan(0)
        expect(response.usage.outputTokens).toBeGreaterThan(0)
        // the request's model was sent (the layer's own is another), and the answer names it
        expect(response.model).toBe("claude-3-5-haiku-20241022")
        expect(response.servedFrom).toBe("provider")
      }))

    it.effect(`${dialect}: every error status maps to its LlmError, without the key`, () =>
      Effect.gen(function*() {
        const client = yield* clientOf(dialect)
        for (const [model, , tag] of statusCases) {
          const error = yield* Effect.flip(client.complete(request(model)))
          expect([model, error._tag]).toEqual([model, tag])
          expect(error.model).toBe(model)
          if (error._tag === "ServerError") expect(error.status).toBe(Number(model.slice(1, 4)))
          noSecrets(error)
          const streamed = yield* Effect.flip(collect(client.stream(request(model))))
          expect([model, streamed._tag]).toEqual([model, tag])
        }
      }))

    it.effect(`${dialect}: Retry-After in seconds, milliseconds and as an HTTP date`, () =>
      Effect.gen(function*() {
        const client = yield* clientOf(dialect)
        const wait = (model: string) =>
          Effect.map(Effect.flip(client.complete(request(model))), (error) =>
            Option.getOrThrow(Option.map(
              error._tag === "RateLimited" || error._tag === "ServerError"
                ? Option.fromNullable(error.retryAfter)
                : Option.none(),
              Duration.toMillis
            )))
        expect(yield* wait("after-seconds")).toBe(2000)
        expect(yield* wait("after-ms")).toBe(1500)
        const date = yield* wait("after-date")
        // an HTTP date has a resolution of one second
        expect(date).toBeGreaterThan(28_000)
        expect(date).toBeLessThanOrEqual(30_000)
      }))

    it.effect(`${dialect}: a stream arrives chunk by chunk, the last chunk with finish reason and usage`, () =>
      Effect.gen(function*() {
        const client = yield* clientOf(dialect)
        const full = yield* client.complete(request("streamed"))
        const chunks = yield* collect(client.stream(request("streamed")))
        expect(chunks.length).toBe(7)
        expect(chunks.slice(0, -1).every((c) => c.content !== "" && c.finishReason === undefined)).toBe(true)
        expect(chunks.map((c) => c.content).join("")).toBe(full.content)
        const last = chunks[chunks.length - 1]
        expect(last.finishReason).toBe("stop")
        expect(last.usage?.outputTokens).toBe(full.usage.outputTokens)
        expect(last.model).toBe("streamed")
      }))

    it.effect(`${dialect}: a cut stream is StreamTruncated; a cut JSON body, a malformed body and a refusal map too`, () =>
      Effect.gen(function*() {
        const client = yield* clientOf(dialect)
        const cut = yield* Effect.flip(collect(client.stream(request("cut"))))
        expect(cut).toMatchObject({ _tag: "StreamTruncated", receivedChunks: 3 })
        expect((yield* Effect.flip(client.complete(request("cut"))))._tag).toBe("MalformedResponse")
        expect((yield* Effect.flip(client.complete(request("malformed"))))._tag).toBe("MalformedResponse")
        const malformedStream = yield* Effect.flip(collect(client.stream(request("malformed"))))
        // @effect/ai-openai skips an event it cannot decode (the stream then ends without its finish)
        expect(malformedStream._tag).toBe(dialect === "openAi" ? "StreamTruncated" : "MalformedResponse")
        expect((yield* Effect.flip(client.complete(request("filtered"))))._tag).toBe("ContentFiltered")
        expect((yield* Effect.flip(collect(client.stream(request("filtered")))))._tag).toBe("ContentFiltered")
      }))

    it.effect(`${dialect}: interrupting a call aborts its HTTP request (the server counts it)`, () =>
      Effect.gen(function*() {
        const server = yield* ChaosServer.ChaosServer
        const client = yield* clientOf(dialect)
        for (const call of [client.complete(request("hang")), collect(client.stream(request("hang")))]) {
          const before = yield* server.stats
          const fiber = yield* Effect.fork(call as Effect.Effect<unknown, unknown>)
          yield* waitFor(server.stats, (s) => s.inFlight > before.inFlight)
          yield* Fiber.interrupt(fiber)
          const after = yield* waitFor(server.stats, (s) => s.aborted > before.aborted)
          expect(after.aborted).toBe(before.aborted + 1)
          expect(after.inFlight).toBe(before.inFlight)
        }
      }))

    it.effect(`${dialect}: a tool call round trip (the call, then its result answered in text)`, () =>
      Effect.gen(function*() {
        const client = yield* clientOf(dialect)
        const tools = [{
          name: "get_weather",
          description: "The weather in a city",
          parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false }
        }]
        const ask = { role: "user" as const, content: "What is the weather in Oslo?" }
        const first = yield* client.complete(new ChatRequest({ model: "m", messages: [ask], tools, toolChoice: { name: "get_weather" } }))
        expect(first.finishReason).toBe("tool_calls")
        expect(first.toolCalls).toHaveLength(1)
        const [call] = first.toolCalls ?? []
        expect(call.name).toBe("get_weather")
        expect(JSON.parse(call.arguments)).toEqual({ city: expect.any(String) })
        const second = yield* client.complete(new ChatRequest({
          model: "m",
          messages: [
            ask,
            { role: "assistant", content: "", toolCalls: [call] },
            { role: "tool", content: "{\"celsius\":21}", toolCallId: call.id }
          ],
          tools
        }))
        expect(second.finishReason).toBe("stop")
        expect(second.content.length).toBeGreaterThan(0)
        const streamed = yield* collect(client.stream(new ChatRequest({ model: "m", messages: [ask], tools, toolChoice: "required" })))
        expect(streamed[streamed.length - 1].toolCalls?.map((c) => c.name)).toEqual(["get_weather"])
      }))

    it.effect(`${dialect}: a json_schema request is answered with a value of the schema`, () =>
      Effect.gen(function*() {
        const client = yield* clientOf(dialect)
        const schema = { type: "object", properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false }
        const response = yield* client.complete(request("m", { responseFormat: { type: "json_schema", jsonSchema: { name: "place", schema } } }))
        expect(JSON.parse(response.content)).toEqual({ city: expect.any(String) })
      }))
  }

  it.effect("the key in @effect/ai's errors reaches no mapped error, no span attribute and no span of ours", () =>
    Effect.gen(function*() {
      const spans: Array<CapturedSpan> = []
      const tracer = capturingTracer(spans)
      const raw: Array<unknown> = []
      for (const dialect of dialects) {
        const models = yield* Models
        const model = dialect === "openAi" ? models.openAi("s401") : models.anthropic("s401")
        raw.push(yield* Effect.flip(LanguageModel.generateText({ prompt: "hi" })).pipe(Effect.provide(model)))
        const client = yield* clientOf(dialect)
        for (const name of ["s401", "s429", "s529", "claude-sonnet-4"]) {
          const exit = yield* Effect.exit(client.complete(request(name))).pipe(Effect.withTracer(tracer))
          if (Exit.isFailure(exit)) noSecrets(exit.cause)
          yield* Effect.exit(collect(client.stream(request(name)))).pipe(Effect.withTracer(tracer))
        }
      }
      // @effect/ai 0.37's own errors show the key in their JSON: that is why the mapping copies nothing of them.
      expect(raw.map((error) => JSON.stringify(error).includes("SECRET"))).toEqual([true, true])
      expect(spans.filter((s) => s.name.startsWith("chat ")).length).toBe(16)
      const dump = JSON.stringify(spans.map((s) => [s.name, [...s.attributes], s.events, s.exit]))
      expect(dump).not.toContain("SECRET")
      for (const span of spans.filter((s) => s.name.startsWith("chat "))) expect(span.exit).toBeDefined()
    }))

  it.effect("a connection refused is ConnectionError (ECONNREFUSED), without the key", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const probe = Net.createServer().listen(0, "127.0.0.1", () => {
            const { port } = probe.address() as Net.AddressInfo
            probe.close(() => resolve(port))
          })
        })
      )
      const closed = AnthropicClient.layer({ apiUrl: `http://127.0.0.1:${port}`, apiKey: Redacted.make(anthropicKey) })
      const client = yield* EffectAi.makeLlmClient().pipe(
        Effect.provide(AnthropicLanguageModel.model("claude-sonnet-4").pipe(
          Layer.provide(closed),
          Layer.provide(FetchHttpClient.layer)
        ))
      )
      const error = yield* Effect.flip(client.complete(request("claude-sonnet-4")))
      expect(error).toMatchObject({ _tag: "ConnectionError", reason: "ECONNREFUSED" })
      expect(JSON.stringify(error)).not.toContain("SECRET")
      expect(String(error)).not.toContain("SECRET")
    }))

  it.effect("cross-provider fallback: GPT in outage, every request answered by Claude, priced at Anthropic's prices", () =>
    Effect.gen(function*() {
      const server = yield* ChaosServer.ChaosServer
      const models = yield* Models
      const Live = LlmClient.layerWith(Fallback.policy({ models: ["gpt-4o", "claude-sonnet-4"] })).pipe(
        Layer.provide(EffectAi.layerLlmClientByModel({
          "gpt-4o": models.openAi("gpt-4o"),
          "claude-sonnet-4": models.anthropic("claude-sonnet-4-20250514")
        }))
      )
      const before = yield* server.stats
      const metricsBefore = yield* LlmMetrics.snapshot
      const responses = yield* Effect.forEach([1, 2, 3, 4, 5], (i) =>
        LlmClient.complete(request("gpt-4o", { messages: [{ role: "user", content: `Question ${i}` }] })))
        .pipe(Effect.provide(Live))
      const chunks = yield* collect(LlmClient.stream(request("gpt-4o"))).pipe(Effect.provide(Live))
      const after = yield* server.stats
      const metricsAfter = yield* LlmMetrics.snapshot
      expect(responses.map((r) => r.model)).toEqual(Array(5).fill("claude-sonnet-4-20250514"))
      expect(chunks[chunks.length - 1].model).toBe("claude-sonnet-4-20250514")
      // one OpenAI call (refused) and one Anthropic call per logical request
      expect((after.byDialect.responses ?? 0) - (before.byDialect.responses ?? 0)).toBe(6)
      expect((after.byDialect.messages ?? 0) - (before.byDialect.messages ?? 0)).toBe(6)
      const claude = Option.getOrThrow(Pricing.find(Pricing.defaultTable, "claude-sonnet-4-20250514"))
      expect(claude).toEqual(Pricing.defaultTable["claude-sonnet-4"])
      const expected = [...responses.map((r) => r.usage), chunks[chunks.length - 1].usage!]
        .reduce((usd, usage) => usd + Pricing.costOf(claude, usage), 0)
      expect(metricsAfter.costUsd - metricsBefore.costUsd).toBeCloseTo(expected, 9)
      expect(metricsAfter.fallbacks - metricsBefore.fallbacks).toBe(6)
    }))

  it.effect("the same through the LanguageModel bridge: generateText over the fallback chain is answered by Claude", () =>
    Effect.gen(function*() {
      const models = yield* Models
      const response = yield* LanguageModel.generateText({ prompt: "Hi" }).pipe(
        Effect.provide(EffectAi.model("gpt-4o").pipe(
          Layer.provide(LlmClient.layerWith(Fallback.policy({ models: ["gpt-4o", "claude-sonnet-4"] }))),
          Layer.provide(EffectAi.layerLlmClientByModel({
            "gpt-4o": models.openAi("gpt-4o"),
            "claude-sonnet-4": models.anthropic("claude-sonnet-4")
          }))
        ))
      )
      const meta = response.content.find((part) => part.type === "response-metadata")
      expect(meta?.type === "response-metadata" && Option.getOrUndefined(meta.modelId)).toBe("claude-sonnet-4")
      expect(response.text.length).toBeGreaterThan(0)
    }))

  it.effect("generateObject with a Schema through layerLanguageModel, Retry underneath: a 503, then the answer", () =>
    Effect.gen(function*() {
      // A server of its own whose seeded fault sequence is: request 0 → 503, request 1 → 200.
      const server = yield* ChaosServer.ChaosServer
      const Place = Schema.Struct({ city: Schema.String, population: Schema.Int })
      const OpenAiModel = OpenAiLanguageModel.model("gpt-4o-mini").pipe(
        Layer.provide(OpenAiClient.layer({ apiUrl: server.baseURL, apiKey: Redacted.make(openAiKey) })),
        Layer.provide(FetchHttpClient.layer)
      )
      const response = yield* LanguageModel.generateObject({ prompt: "A city", schema: Place, objectName: "place" }).pipe(
        Effect.provide(EffectAi.layerLanguageModel.pipe(
          Layer.provide(LlmClient.layerWith(Retry.policy({ maxRetries: 2, baseDelay: "5 millis" }))),
          Layer.provide(EffectAi.layerLlmClient().pipe(Layer.provide(OpenAiModel)))
        ))
      )
      const stats = yield* server.stats
      expect(response.value).toEqual({ city: expect.any(String), population: expect.any(Number) })
      expect(stats.byOutcome).toEqual({ "error:503": 1, ok: 1 })
      expect(stats.byDialect.responses).toBe(2)
    }).pipe(Effect.provide(ChaosServer.layer({ seed: 1, faults: { errors: [{ status: 503, rate: 0.5 }] } }))))

  it.effect("a Toolkit round trip through layerLanguageModel over Anthropic", () =>
    Effect.gen(function*() {
      const first = yield* LanguageModel.generateText({ prompt: "Weather in Paris? Use GetWeather.", toolkit: Weather })
      expect(first.toolCalls.map((c) => c.name)).toEqual(["GetWeather"])
      expect(first.toolResults.map((r) => r.result)).toEqual([{ celsius: 21 }])
      const second = yield* LanguageModel.generateText({
        prompt: [
          { role: "user", content: "Weather in Paris? Use GetWeather." },
          { role: "assistant", content: first.toolCalls.map((c) => ({ type: "tool-call" as const, id: c.id, name: c.name, params: c.params })) },
          { role: "tool", content: first.toolResults.map((r) => ({ type: "tool-result" as const, id: r.id, name: r.name, result: r.encodedResult, isFailure: false, providerExecuted: false })) }
        ],
        toolkit: Weather
      })
      expect(second.finishReason).toBe("stop")
      expect(second.text.length).toBeGreaterThan(0)
    }).pipe(
      Effect.provide(WeatherHandlers),
      Effect.provide(Layer.unwrapEffect(Effect.map(Models, (models) =>
        EffectAi.model("claude-sonnet-4").pipe(
          Layer.provide(EffectAi.layerLlmClient()),
          Layer.provide(models.anthropic("claude-sonnet-4"))
        ))))
    ))

  it.effect("budget, cache and breaker work unchanged over an @effect/ai provider", () =>
    Effect.gen(function*() {
      const server = yield* ChaosServer.ChaosServer
      // cache: the second identical deterministic request is not sent
      const cached = LlmClient.layerWith(ResponseCache.policy({ ttl: "1 minute" })).pipe(
        Layer.provide(clientLayer("anthropic")),
        Layer.provide(ResponseCache.layerStoreMemory)
      )
      const s0 = yield* server.stats
      const [a, b] = yield* Effect.all([
        LlmClient.complete(request("claude-sonnet-4", { temperature: 0 })),
        LlmClient.complete(request("claude-sonnet-4", { temperature: 0 }))
      ]).pipe(Effect.provide(cached))
      expect([a.servedFrom, b.servedFrom]).toEqual(["provider", "cache"])
      expect(b.content).toBe(a.content)
      expect((yield* server.stats).requests - s0.requests).toBe(1)

      // budget: a call that cannot fit is refused before anything is sent
      const budget = LlmClient.layerWith(TokenBudget.policy({ scope: "global", limit: { tokens: 40 }, period: "day" })).pipe(
        Layer.provide(clientLayer("openAi")),
        Layer.provide(TokenBudget.layerStoreMemory)
      )
      const s1 = yield* server.stats
      const refused = yield* Effect.flip(LlmClient.complete(request("gpt-4o-mini", { maxTokens: 1000 }))).pipe(
        Effect.provide(budget)
      )
      expect(refused._tag).toBe("BudgetExceeded")
      expect((yield* server.stats).requests).toBe(s1.requests)

      // breaker: after 3 failures the circuit opens and the provider is not called
      const breaker = LlmClient.layerWith(CircuitBreaker.policy({ per: "model", failureThreshold: 3, halfOpenAfter: "1 minute" })).pipe(
        Layer.provide(clientLayer("anthropic")),
        Layer.provide(CircuitBreaker.layerStoreMemory)
      )
      const s2 = yield* server.stats
      const errors = yield* Effect.forEach([1, 2, 3, 4, 5], () => Effect.flip(LlmClient.complete(request("s503")))).pipe(
        Effect.provide(breaker)
      )
      expect(errors.map((e) => e._tag)).toEqual(["ServerError", "ServerError", "ServerError", "CircuitOpen", "CircuitOpen"])
      expect((yield* server.stats).requests - s2.requests).toBe(3)
    }))
})

interface CapturedSpan {
  readonly name: string
  readonly attributes: Map<string, unknown>
  readonly events: Array<unknown>
  exit?: unknown
}

// Records every span with its attributes, events and, for this library's call spans, the exit it ended with.
const capturingTracer = (spans: Array<CapturedSpan>) =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind) => {
      const captured: CapturedSpan = { name, attributes: new Map(), events: [] }
      spans.push(captured)
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span-${spans.length}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes: captured.attributes,
        links,
        sampled: true,
        kind,
        end: (_endTime, exit) => {
          if (name.startsWith("chat ")) captured.exit = exit
        },
        attribute: (key, value) => void captured.attributes.set(key, value),
        event: (eventName, _time, attributes) => void captured.events.push([eventName, attributes]),
        addLinks: () => {}
      }
      return span
    },
    context: (f) => f()
  })
