import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { describe, expect, it } from "@effect/vitest"
import { SpanKind, SpanStatusCode } from "@opentelemetry/api"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import {
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_INPUT_MESSAGES,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_OUTPUT_MESSAGES,
  ATTR_GEN_AI_PROVIDER_NAME,
  ATTR_GEN_AI_REQUEST_MAX_TOKENS,
  ATTR_GEN_AI_REQUEST_MODEL,
  ATTR_GEN_AI_REQUEST_TEMPERATURE,
  ATTR_GEN_AI_RESPONSE_FINISH_REASONS,
  ATTR_GEN_AI_RESPONSE_MODEL,
  ATTR_GEN_AI_SYSTEM,
  ATTR_GEN_AI_TOKEN_TYPE,
  ATTR_GEN_AI_USAGE_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_OUTPUT_TOKENS,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  METRIC_GEN_AI_CLIENT_OPERATION_DURATION,
  METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
  METRIC_GEN_AI_CLIENT_TOKEN_USAGE
} from "@opentelemetry/semantic-conventions/incubating"
import { Effect, Fiber, Layer, Metric, Stream, TestClock } from "effect"
import type { MetricState } from "effect"
import * as Fallback from "../src/Fallback.js"
import { ChatChunk, ChatRequest, ChatResponse, type Usage } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import { ServerError } from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as Pricing from "../src/Pricing.js"
import * as RateLimit from "../src/RateLimit.js"
import * as ResponseCache from "../src/ResponseCache.js"
import * as Retry from "../src/Retry.js"
import * as Tokenizer from "../src/Tokenizer.js"

// A provider of the test's own: "primary" is down (503), every other model answers. No OpenAI, no FakeLlm.
const PROMPT = "my private question about invoice 4711"
const ANSWER = "the confidential answer"
const calls: Array<string> = []
const reported: Usage = { inputTokens: 12, outputTokens: 3 }
// `null`: the provider reports no usage
const provider = (usage: Usage | null = reported): LlmClient.Service => ({
  complete: (request) =>
    Effect.suspend(() => {
      calls.push(request.model)
      return request.model === "primary"
        ? Effect.fail(new ServerError({ status: 503, model: request.model }))
        : Effect.succeed(new ChatResponse({
          id: `resp-${calls.length}`,
          model: request.model,
          content: ANSWER,
          finishReason: "stop",
          usage: usage ?? { inputTokens: 0, outputTokens: 0 },
          servedFrom: "provider"
        }))
    }),
  stream: (request) =>
    Stream.suspend(() => {
      calls.push(request.model)
      if (request.model === "primary") return Stream.fail(new ServerError({ status: 503, model: request.model }))
      const words = ANSWER.split(" ")
      return Stream.fromIterable([
        new ChatChunk({ content: "", model: request.model }),
        ...words.map((w, i) => new ChatChunk({ content: i === 0 ? w : ` ${w}`, model: request.model })),
        new ChatChunk({ content: "", model: request.model, finishReason: "stop", ...(usage === null ? {} : { usage }) })
      ]).pipe(Stream.tap(() => Effect.sleep("100 millis")))
    })
})
const info = { provider: "acme", serverAddress: "llm.acme.test", serverPort: 8443 }
const request = new ChatRequest({
  model: "primary",
  messages: [{ role: "user", content: PROMPT }],
  maxTokens: 64,
  temperature: 0.3
})

// The SDK shuts its exporters down with the layer, and the in-memory one forgets its spans then: keep them.
class KeepingExporter extends InMemorySpanExporter {
  override shutdown(): Promise<void> {
    return Promise.resolve()
  }
}
const exporter = new KeepingExporter()
const Tracing = NodeSdk.layer(() => ({
  resource: { serviceName: "telemetry-test" },
  spanProcessor: new SimpleSpanProcessor(exporter)
}))

const stack = (usage: Usage | null = reported) =>
  LlmClient.layerWith(
    Fallback.policy({ models: ["primary", "secondary"] }),
    Retry.policy({ maxRetries: 1, baseDelay: "10 millis", jitter: "none" })
  ).pipe(Layer.provide(LlmClient.layer(provider(usage), info)))

// Runs `effect` with the OpenTelemetry SDK as the tracer and the TestClock moved far enough for every sleep.
const traced = <A, E>(
  effect: Effect.Effect<A, E, LlmClient.LlmClient>,
  client: Layer.Layer<LlmClient.LlmClient, unknown> = stack()
) =>
  Effect.gen(function* () {
    exporter.reset()
    calls.length = 0
    const fiber = yield* Effect.fork(effect.pipe(Effect.withSpan("handler"), Effect.provide(client), Effect.provide(Tracing)))
    yield* TestClock.adjust("10 seconds")
    const result = yield* Fiber.join(fiber)
    return { result, spans: exporter.getFinishedSpans() }
  })

const named = (spans: ReadonlyArray<ReadableSpan>, name: string) => spans.filter((s) => s.name === name)
const parentOf = (span: ReadableSpan) => span.parentSpanContext?.spanId
const dump = (spans: ReadonlyArray<ReadableSpan>) =>
  JSON.stringify(spans.map((s) => ({ name: s.name, attributes: s.attributes, events: s.events })))

describe("spans by the OpenTelemetry GenAI conventions, through the OpenTelemetry SDK", () => {
  it.effect("a fallback chain with one retry: one chat span, an attempt span per provider call, retry and fallback events", () =>
    Effect.gen(function* () {
      const { result, spans } = yield* traced(LlmClient.complete(request))
      expect(result.model).toBe("secondary")
      expect(calls).toEqual(["primary", "primary", "secondary"])

      const [handler] = named(spans, "handler")
      const [call] = named(spans, "chat primary")
      expect(named(spans, "chat primary")).toHaveLength(1)
      expect(parentOf(call)).toBe(handler.spanContext().spanId)
      expect(call.kind).toBe(SpanKind.CLIENT)
      expect(call.status.code).toBe(SpanStatusCode.OK)
      expect(call.attributes).toMatchObject({
        [ATTR_GEN_AI_OPERATION_NAME]: "chat",
        [ATTR_GEN_AI_PROVIDER_NAME]: "acme",
        [ATTR_GEN_AI_SYSTEM]: "acme",
        [ATTR_GEN_AI_REQUEST_MODEL]: "primary",
        [ATTR_GEN_AI_RESPONSE_MODEL]: "secondary",
        [ATTR_GEN_AI_REQUEST_MAX_TOKENS]: 64,
        [ATTR_GEN_AI_REQUEST_TEMPERATURE]: 0.3,
        [ATTR_GEN_AI_USAGE_INPUT_TOKENS]: 12,
        [ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: 3,
        [ATTR_SERVER_ADDRESS]: "llm.acme.test",
        [ATTR_SERVER_PORT]: 8443
      })
      // a string[], as the conventions type it (not a string)
      expect(call.attributes[ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(["stop"])
      expect(call.attributes[ATTR_ERROR_TYPE]).toBeUndefined()

      const attempts = named(spans, "llm.attempt")
      expect(attempts.map((a) => a.attributes[ATTR_GEN_AI_REQUEST_MODEL])).toEqual(["primary", "primary", "secondary"])
      expect(attempts.every((a) => parentOf(a) === call.spanContext().spanId)).toBe(true)
      expect(attempts.map((a) => a.attributes[ATTR_ERROR_TYPE])).toEqual(["ServerError", "ServerError", undefined])
      expect(attempts[2].attributes[ATTR_GEN_AI_RESPONSE_MODEL]).toBe("secondary")
      expect(attempts.map((a) => a.status.code)).toEqual([SpanStatusCode.ERROR, SpanStatusCode.ERROR, SpanStatusCode.OK])
      // usage is the call's: an attempt span never repeats it (a backend summing gen_ai.usage.* counts it once)
      expect(attempts.every((a) => a.attributes[ATTR_GEN_AI_USAGE_INPUT_TOKENS] === undefined)).toBe(true)

      const events = call.events.map((e) => [e.name, e.attributes])
      expect(events).toEqual([
        [LlmMetrics.events.retry, {
          "llm.retry.attempt": 2,
          "llm.retry.delay_ms": 10,
          "llm.retry.reason": "ServerError",
          [ATTR_GEN_AI_REQUEST_MODEL]: "primary"
        }],
        [LlmMetrics.events.fallback, { "llm.fallback.from": "primary", "llm.fallback.to": "secondary", "llm.fallback.reason": "ServerError" }]
      ])
      expect(dump(spans)).not.toContain(PROMPT)
      expect(dump(spans)).not.toContain(ANSWER)
    }))

  it.effect("every model failing: error.type on the call span, which ends in error", () =>
    Effect.gen(function* () {
      const onlyPrimary = LlmClient.layerWith(Retry.policy({ maxRetries: 1, baseDelay: "10 millis", jitter: "none" })).pipe(
        Layer.provide(LlmClient.layer(provider(), info))
      )
      const { result, spans } = yield* traced(Effect.flip(LlmClient.complete(request)), onlyPrimary)
      expect(result._tag).toBe("ServerError")
      const [call] = named(spans, "chat primary")
      expect(call.attributes[ATTR_ERROR_TYPE]).toBe("ServerError")
      expect(call.status.code).toBe(SpanStatusCode.ERROR)
      expect(call.attributes[ATTR_GEN_AI_RESPONSE_MODEL]).toBeUndefined()
    }))

  it.effect("prompt and completion text only when opted in, as gen_ai.input.messages / gen_ai.output.messages", () =>
    Effect.gen(function* () {
      const { spans } = yield* traced(LlmMetrics.withCaptureContent(LlmClient.complete(request)))
      const [call] = named(spans, "chat primary")
      expect(JSON.parse(String(call.attributes[ATTR_GEN_AI_INPUT_MESSAGES]))).toEqual([
        { role: "user", parts: [{ type: "text", content: PROMPT }] }
      ])
      expect(JSON.parse(String(call.attributes[ATTR_GEN_AI_OUTPUT_MESSAGES]))).toEqual([
        { role: "assistant", parts: [{ type: "text", content: ANSWER }], finish_reason: "stop" }
      ])
      // only on the call's span
      expect(dump(named(spans, "llm.attempt"))).not.toContain(PROMPT)
    }))

  it.effect("stacked layerWith: still one span for the logical call", () =>
    Effect.gen(function* () {
      const twice = LlmClient.layerWith(LlmClient.policy({ name: "outer", complete: (next) => next })).pipe(
        Layer.provide(stack())
      )
      const { spans } = yield* traced(LlmClient.complete(request), twice)
      expect(named(spans, "chat primary")).toHaveLength(1)
      expect(named(spans, "llm.attempt")).toHaveLength(3)
    }))

  it.effect("a cache hit: llm.cache.hit on its call span, which has no usage (no tokens were used) and no attempt", () =>
    Effect.gen(function* () {
      const cached = LlmClient.layerWith(ResponseCache.policy({ ttl: "1 hour" })).pipe(
        Layer.provide(LlmClient.layer(provider(), info)),
        Layer.provide(ResponseCache.layerStoreMemory)
      )
      const deterministic = new ChatRequest({ ...request, model: "secondary", temperature: 0 })
      const { spans } = yield* traced(
        Effect.zipRight(LlmClient.complete(deterministic), LlmClient.complete(deterministic)),
        cached
      )
      const [first, hit] = named(spans, "chat secondary")
      expect(first.attributes[ATTR_GEN_AI_USAGE_INPUT_TOKENS]).toBe(12)
      expect(hit.attributes["llm.served_from"]).toBe("cache")
      expect(hit.attributes[ATTR_GEN_AI_USAGE_INPUT_TOKENS]).toBeUndefined()
      expect(hit.events.map((e) => [e.name, e.attributes])).toEqual([
        [LlmMetrics.events.cacheHit, { [ATTR_GEN_AI_REQUEST_MODEL]: "secondary" }]
      ])
      expect(named(spans, "llm.attempt")).toHaveLength(1)
    }))

  it.effect("a provider used without any policy: its call span is the conventions' span", () =>
    Effect.gen(function* () {
      const bare = LlmClient.layer(provider(), info)
      const { spans } = yield* traced(LlmClient.complete(new ChatRequest({ ...request, model: "secondary" })), bare)
      const [call] = named(spans, "chat secondary")
      expect(call.kind).toBe(SpanKind.CLIENT)
      expect(call.attributes).toMatchObject({ [ATTR_GEN_AI_OPERATION_NAME]: "chat", [ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: 3 })
      expect(named(spans, "llm.attempt")).toHaveLength(0)
    }))

  it.effect("a stream: the chat span ends with the stream, with its usage, finish reason and time to first chunk", () =>
    Effect.gen(function* () {
      const { result, spans } = yield* traced(Stream.runCollect(LlmClient.stream(request)))
      expect([...result].map((c) => c.content).join("")).toBe(ANSWER)
      const [call] = named(spans, "chat primary")
      expect(call.attributes).toMatchObject({
        [ATTR_GEN_AI_RESPONSE_MODEL]: "secondary",
        [ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: 3,
        "llm.stream": true
      })
      expect(call.attributes[ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(["stop"])
      const [, , secondary] = named(spans, "llm.attempt")
      // the first text came after two 100 ms chunks (the empty opening delta is not the first chunk of text)
      expect(secondary.attributes["gen_ai.response.time_to_first_chunk"]).toBeCloseTo(0.2, 5)
      expect(call.events.map((e) => e.name)).toEqual([LlmMetrics.events.retry, LlmMetrics.events.fallback])
      expect(dump(spans)).not.toContain(ANSWER.split(" ")[1])
    }))
})

const histogramCount = (name: string, labels: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) =>
    pairs
      .filter((p) => p.metricKey.name === name)
      .filter((p) => Object.entries(labels).every(([k, v]) => p.metricKey.tags.some((t) => t.key === k && t.value === v)))
      .reduce((n, p) => n + (p.metricState as MetricState.MetricState.Histogram).count, 0))

describe("metrics for a provider of one's own", () => {
  it.effect("llm_* counters by model, the GenAI histograms with their labels, the snapshot by model", () =>
    Effect.gen(function* () {
      const before = yield* LlmMetrics.snapshot
      const durationBefore = yield* histogramCount(METRIC_GEN_AI_CLIENT_OPERATION_DURATION, {
        [ATTR_GEN_AI_PROVIDER_NAME]: "acme",
        [ATTR_ERROR_TYPE]: "ServerError"
      })
      yield* traced(LlmClient.complete(request))
      const after = yield* LlmMetrics.snapshot
      expect(after.requests - before.requests).toBe(3)
      expect(after.failures - before.failures).toBe(2)
      expect(after.retries - before.retries).toBe(1)
      expect(after.fallbacks - before.fallbacks).toBe(1)
      const primary = after.byModel["primary"]
      const secondary = after.byModel["secondary"]
      expect(primary.requests - (before.byModel["primary"]?.requests ?? 0)).toBe(2)
      expect(primary.failures - (before.byModel["primary"]?.failures ?? 0)).toBe(2)
      expect(secondary.outputTokens - (before.byModel["secondary"]?.outputTokens ?? 0)).toBe(3)
      expect(secondary.errorRate).toBe(0)

      expect(LlmMetrics.names.operationDuration).toBe(METRIC_GEN_AI_CLIENT_OPERATION_DURATION)
      expect(LlmMetrics.names.tokenUsage).toBe(METRIC_GEN_AI_CLIENT_TOKEN_USAGE)
      expect(LlmMetrics.names.timeToFirstChunk).toBe(METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK)
      expect(yield* histogramCount(METRIC_GEN_AI_CLIENT_OPERATION_DURATION, {
        [ATTR_GEN_AI_PROVIDER_NAME]: "acme",
        [ATTR_ERROR_TYPE]: "ServerError"
      })).toBe(durationBefore + 2)
      const tokens = (type: string) =>
        histogramCount(METRIC_GEN_AI_CLIENT_TOKEN_USAGE, {
          [ATTR_GEN_AI_OPERATION_NAME]: "chat",
          [ATTR_GEN_AI_PROVIDER_NAME]: "acme",
          [ATTR_GEN_AI_REQUEST_MODEL]: "secondary",
          [ATTR_GEN_AI_RESPONSE_MODEL]: "secondary",
          [ATTR_SERVER_ADDRESS]: "llm.acme.test",
          [ATTR_SERVER_PORT]: "8443",
          [ATTR_GEN_AI_TOKEN_TYPE]: type,
          unit: "{token}"
        })
      expect(yield* tokens("input")).toBeGreaterThanOrEqual(1)
      expect(yield* tokens("output")).toBeGreaterThanOrEqual(1)
    }))

  it.effect("a stream records its time to first chunk (s) and first token (ms)", () =>
    Effect.gen(function* () {
      const before = yield* histogramCount(METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK, {
        [ATTR_GEN_AI_PROVIDER_NAME]: "acme"
      })
      yield* traced(Stream.runDrain(LlmClient.stream(request)))
      expect(yield* histogramCount(METRIC_GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK, {
        [ATTR_GEN_AI_PROVIDER_NAME]: "acme",
        unit: "s"
      })).toBe(before + 1)
      const snapshot = yield* LlmMetrics.snapshot
      expect(snapshot.byModel["secondary"].timeToFirstTokenMs.p50).toBeGreaterThan(150)
      expect(snapshot.byModel["secondary"].timeToFirstTokenMs.p50).toBeLessThanOrEqual(250)
    }))
})

const none = null
describe("every outcome is recorded", () => {
  it.effect("a provider call interrupted (a Timeout racing it) counts as a call that failed with Interrupted", () =>
    Effect.gen(function* () {
      const hanging = LlmClient.layer({ complete: () => Effect.never, stream: () => Stream.never }, info)
      const before = yield* LlmMetrics.snapshot
      const fiber = yield* Effect.fork(Effect.either(LlmClient.complete(request).pipe(Effect.timeout("1 second"))).pipe(
        Effect.provide(hanging)
      ))
      yield* TestClock.adjust("2 seconds")
      yield* Fiber.join(fiber)
      const after = yield* LlmMetrics.snapshot
      expect(after.byModel["primary"].requests - (before.byModel["primary"]?.requests ?? 0)).toBe(1)
      const interrupted = yield* Metric.value(Metric.tagged(Metric.tagged(LlmMetrics.failures, "model", "primary"), "error", "Interrupted"))
      expect(interrupted.count).toBeGreaterThanOrEqual(1)
    }))
})

describe("cost", () => {
  it.effect("priced with the Pricing in context (a model of one's own)", () =>
    Effect.gen(function* () {
      const house = new ChatRequest({ ...request, model: "house-model" })
      const prices = Pricing.layer({
        "house-model": { inputPerMillion: 1_000_000, outputPerMillion: 2_000_000, contextWindow: 8192, maxOutputTokens: 1024 }
      })
      const before = yield* LlmMetrics.snapshot
      yield* LlmClient.complete(house).pipe(Effect.provide(LlmClient.layer(provider(), info)), Effect.provide(prices))
      const after = yield* LlmMetrics.snapshot
      // 12 input tokens at $1 each, 3 output tokens at $2 each
      expect(after.byModel["house-model"].costUsd - (before.byModel["house-model"]?.costUsd ?? 0)).toBeCloseTo(18, 9)
      expect(after.byModel["house-model"].unpricedCalls).toBe(0)
    }))
})

describe("usage the provider did not report", () => {
  const noUsage = (model: string) => new ChatRequest({ ...request, model })

  it.effect("a completion without usage is charged the exact prompt count and the answer's count, marked estimated", () =>
    Effect.gen(function* () {
      const before = yield* LlmMetrics.snapshot
      const { result } = yield* traced(LlmClient.complete(noUsage("secondary")), LlmClient.layer(provider(none), info))
      const prompt = yield* Tokenizer.countMessages(noUsage("secondary").messages, "secondary")
      const answer = yield* Tokenizer.count(ANSWER, "secondary")
      expect(result.usage).toEqual({ inputTokens: prompt, outputTokens: answer, estimated: true })
      const after = yield* LlmMetrics.snapshot
      expect(after.estimatedTokens - before.estimatedTokens).toBe(prompt + answer)
      expect(after.inputTokens - before.inputTokens).toBe(prompt)
    }))

  it.effect("a partial usage (zero input beside a prompt) gets only the missing part counted", () =>
    Effect.gen(function* () {
      const { result } = yield* traced(
        LlmClient.complete(noUsage("secondary")),
        LlmClient.layer(provider({ inputTokens: 0, outputTokens: 7 }), info)
      )
      const prompt = yield* Tokenizer.countMessages(noUsage("secondary").messages, "secondary")
      expect(result.usage).toEqual({ inputTokens: prompt, outputTokens: 7, estimated: true })
    }))

  it.effect("a stream without usage: its last chunk carries the estimate (through a policy stack too)", () =>
    Effect.gen(function* () {
      const { result } = yield* traced(Stream.runCollect(LlmClient.stream(request)), stack(none))
      const chunks = [...result]
      const last = chunks[chunks.length - 1]
      const prompt = yield* Tokenizer.countMessages(request.messages, "primary")
      const answer = yield* Tokenizer.count(ANSWER, "primary")
      expect(last.finishReason).toBe("stop")
      expect(last.usage).toEqual({ inputTokens: prompt, outputTokens: answer, estimated: true })
      expect(chunks.slice(0, -1).every((c) => c.usage === undefined)).toBe(true)
    }))

  it.effect("a stream that ends with neither a finish reason nor usage gets one more empty chunk with the estimate", () =>
    Effect.gen(function* () {
      const plain = LlmClient.layer({
        complete: () => Effect.die("unused"),
        stream: (r) => Stream.make(new ChatChunk({ content: "one two", model: r.model }))
      }, info)
      const { result } = yield* traced(Stream.runCollect(LlmClient.stream(request)), plain)
      const chunks = [...result]
      expect(chunks.map((c) => c.content)).toEqual(["one two", ""])
      expect(chunks[1].usage).toMatchObject({ estimated: true, outputTokens: yield* Tokenizer.count("one two", "primary") })
    }))
})

describe("the estimate is charged like reported usage", () => {
  it.effect("a tokens-per-minute limit charges the answer's counted tokens (no usage reported, no maxTokens)", () =>
    Effect.gen(function* () {
      const long = "word ".repeat(60)
      const silent = LlmClient.layer({
        complete: (r) =>
          Effect.succeed(new ChatResponse({
            id: "x", model: r.model, content: long, finishReason: "stop",
            usage: { inputTokens: 0, outputTokens: 0 }, servedFrom: "provider"
          })),
        stream: () => Stream.die("unused")
      }, info)
      const limited = LlmClient.layerWith(RateLimit.policy({ tpm: 100, onLimit: "fail" })).pipe(
        Layer.provide(silent),
        Layer.provide(RateLimit.layerStoreMemory)
      )
      const ask = new ChatRequest({ model: "secondary", messages: [{ role: "user", content: "hi" }] })
      // (the charge beyond the estimate is made in the background: let it land between calls)
      const call = Effect.either(LlmClient.complete(ask)).pipe(Effect.zipLeft(Effect.yieldNow()))
      const outcomes = yield* Effect.forEach([1, 2, 3, 4], () => call).pipe(
        Effect.provide(limited)
      )
      // each call is admitted on its prompt alone (a few tokens), then charged its ~60 answer tokens:
      // the third no longer fits in 100 (it would have without the charge)
      expect(outcomes.map((o) => o._tag)).toEqual(["Right", "Right", "Left", "Left"])
      expect(outcomes[2]).toMatchObject({ left: { _tag: "RateLimited", source: "client" } })
    }))
})

describe("applied once", () => {
  it("make on a client already made, or decorated from one, returns it as is", () => {
    const made = LlmClient.make(provider(), info)
    expect(LlmClient.make(made)).toBe(made)
    const decorated = LlmClient.decorate(made, Retry.policy({ maxRetries: 1 }))
    expect(LlmClient.make(decorated)).toBe(decorated)
  })

  it.effect("a client put in context without make is recorded once, however it is reached", () =>
    Effect.gen(function* () {
      const before = yield* LlmMetrics.snapshot
      const raw = Layer.succeed(LlmClient.LlmClient, provider())
      const secondary = new ChatRequest({ ...request, model: "secondary" })
      yield* LlmClient.complete(secondary).pipe(Effect.provide(raw))
      yield* LlmClient.complete(secondary).pipe(
        Effect.provide(LlmClient.layerWith(LlmClient.policy({ name: "id", complete: (next) => next })).pipe(Layer.provide(raw)))
      )
      const after = yield* LlmMetrics.snapshot
      expect(after.requests - before.requests).toBe(2)
    }))
})
