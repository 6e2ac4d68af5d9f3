import { describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import * as Fallback from "../src/Fallback.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as Otlp from "../src/Otlp.js"
import * as Retry from "../src/Retry.js"
import {
  attributes,
  lastMetrics,
  pointValue,
  receiver,
  receiverWith,
  resourcesOf,
  spansOf,
  type MetricData,
  type Received,
  type Span
} from "./support/otlpReceiver.js"

const secretPrompt = "my private prompt about order 4711"
const secretHeader = "otlp-secret-token-123"

// gpt-4o is down (its first attempt and its one retry fail), gpt-4o-mini answers.
const script: FakeLlm.Script = ({ request }) =>
  request.model === "gpt-4o"
    ? FakeLlm.fail(new LlmError.ServerError({ status: 503, model: "gpt-4o" }))
    : FakeLlm.reply("the answer", { usage: { inputTokens: 12, outputTokens: 3 } })

const Client = LlmClient.layerWith(
  Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
  Retry.policy({ maxRetries: 1, baseDelay: "1 millis", jitter: "none" })
).pipe(Layer.provide(FakeLlm.layer(script)))

const request = new ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: secretPrompt }], maxTokens: 50 })

// Long intervals: whatever arrives was sent by the flush on scope close.
const quiet = { tracesExportInterval: "1 hour", metricsExportInterval: "1 hour" } as const

const metric = (metrics: ReadonlyArray<MetricData>, name: string): MetricData => {
  const found = metrics.find((m) => m.name === name)
  if (found === undefined) throw new Error(`metric ${name} was not exported (got ${metrics.map((m) => m.name).join(", ")})`)
  return found
}

const sumPoints = (metrics: ReadonlyArray<MetricData>, name: string) =>
  (metric(metrics, name).sum?.dataPoints ?? []).map((p) => ({ ...attributes(p.attributes), value: pointValue(p) }))

const runExported = <A, E>(program: Effect.Effect<A, E, LlmClient.LlmClient>, options: Partial<Otlp.Options> = {}) =>
  Effect.scoped(Effect.gen(function* () {
    const otlp = yield* receiver
    const result = yield* program.pipe(
      Effect.provide(Client),
      Effect.provide(Otlp.layer({ url: otlp.url, serviceName: "otlp-test", encoding: "json", ...quiet, ...options }))
    )
    return { result, received: otlp.received as ReadonlyArray<Received> }
  }))

describe("Otlp.layer", () => {
  it.live("exports the span tree and the metric points of a fallback chain with one retry, flushed on scope close", () =>
    Effect.gen(function* () {
      const { received, result } = yield* runExported(
        LlmClient.complete(request).pipe(Effect.withSpan("support.answer")),
        { headers: { "x-collector-token": Redacted.make(secretHeader) }, serviceVersion: "1.2.3" }
      )
      expect(result.model).toBe("gpt-4o-mini")

      const paths = received.map((r) => r.path)
      expect(paths).toContain("/v1/traces")
      expect(paths).toContain("/v1/metrics")
      for (const r of received) {
        expect(r.contentType).toMatch(/^application\/json/)
        expect(r.headers["x-collector-token"]).toBe(secretHeader)
        const text = Buffer.from(r.bytes).toString("utf8")
        expect(text).not.toContain(secretPrompt)
        expect(text).not.toContain("the answer")
        expect(text).not.toContain(secretHeader)
      }
      for (const resource of resourcesOf(received)) {
        expect(resource["service.name"]).toBe("otlp-test")
        expect(resource["service.version"]).toBe("1.2.3")
      }

      // The span tree: one trace, rooted at the caller's span, every other span's parent in the tree.
      const spans = spansOf(received)
      const root = spans.find((s) => s.name === "support.answer")
      expect(root).toBeDefined()
      expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([root!.traceId]))
      const ids = new Set(spans.map((s) => s.spanId))
      for (const span of spans) {
        if (span === root) expect(span.parentSpanId).toBeUndefined()
        else expect(ids.has(span.parentSpanId ?? "")).toBe(true)
      }
      expect(root!.status.code).toBe(1)

      // One client span per logical call, named by the conventions, with the GenAI attributes.
      const children = (parent: Span) => spans.filter((s) => s.parentSpanId === parent.spanId)
      const [call] = children(root!)
      expect(children(root!).map((s) => s.name)).toEqual(["chat gpt-4o"])
      expect(call.kind).toBe(3) // client
      expect(call.status.code).toBe(1)
      expect(attributes(call.attributes)).toMatchObject({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "fake",
        "gen_ai.system": "fake",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.max_tokens": 50,
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 3
      })
      expect(Object.keys(attributes(call.attributes))).not.toContain("error.type")
      // The policies' decisions, as events on the call's span, in order: the retry, then the fallback.
      const decisions = call.events.map((e) => [e.name, attributes(e.attributes)])
      expect(decisions).toEqual([
        ["llm.retry", { "llm.retry.attempt": 2, "llm.retry.delay_ms": 1, "llm.retry.reason": "ServerError", "gen_ai.request.model": "gpt-4o" }],
        ["llm.fallback", { "llm.fallback.from": "gpt-4o", "llm.fallback.to": "gpt-4o-mini", "llm.fallback.reason": "ServerError" }]
      ])
      // Under it, one span per attempt: gpt-4o and its retry fail with a 503, then the fallback answers.
      const attempts = children(call)
      expect(attempts.map((a) => a.name)).toEqual(["llm.attempt", "llm.attempt", "llm.attempt"])
      expect(attempts.map((a) => attributes(a.attributes)["gen_ai.request.model"])).toEqual(["gpt-4o", "gpt-4o", "gpt-4o-mini"])
      expect(attempts.map((a) => attributes(a.attributes)["error.type"])).toEqual(["ServerError", "ServerError", undefined])
      expect(attempts.map((a) => a.status.code)).toEqual([2, 2, 1])
      expect(attributes(attempts[2].attributes)["gen_ai.response.model"]).toBe("gpt-4o-mini")

      // The metric points: two calls to gpt-4o (the attempt and its retry), both 503s, one fallback, one answer.
      const metrics = lastMetrics(received)
      expect(sumPoints(metrics, "llm_requests_total")).toEqual(expect.arrayContaining([
        { model: "gpt-4o", value: 2 },
        { model: "gpt-4o-mini", value: 1 }
      ]))
      expect(sumPoints(metrics, "llm_failures_total")).toEqual(expect.arrayContaining([
        { model: "gpt-4o", error: "ServerError", value: 2 }
      ]))
      expect(sumPoints(metrics, "llm_retries_total")).toEqual(expect.arrayContaining([
        { model: "gpt-4o", error: "ServerError", value: 1 }
      ]))
      expect(sumPoints(metrics, "llm_fallbacks_total")).toEqual(expect.arrayContaining([
        expect.objectContaining({ from: "gpt-4o", to: "gpt-4o-mini", value: 1 })
      ]))
      expect(sumPoints(metrics, "llm_input_tokens_total")).toEqual(expect.arrayContaining([
        { model: "gpt-4o-mini", value: 12 }
      ]))
      // The conventions' histograms: the duration of each provider operation (s), tokens by type.
      const duration = metric(metrics, "gen_ai.client.operation.duration")
      expect(duration.unit).toBe("s")
      const durations = (duration.histogram?.dataPoints ?? []).map((p) => ({ ...attributes(p.attributes), count: p.count }))
      expect(durations).toEqual(expect.arrayContaining([
        expect.objectContaining({
          "gen_ai.operation.name": "chat",
          "gen_ai.provider.name": "fake",
          "gen_ai.request.model": "gpt-4o",
          "error.type": "ServerError",
          count: 2
        }),
        expect.objectContaining({ "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini", count: 1 })
      ]))
      const usage = (metric(metrics, "gen_ai.client.token.usage").histogram?.dataPoints ?? [])
        .map((p) => ({ ...attributes(p.attributes), sum: p.sum }))
      expect(usage).toEqual(expect.arrayContaining([
        expect.objectContaining({ "gen_ai.request.model": "gpt-4o-mini", "gen_ai.token.type": "input", sum: 12 }),
        expect.objectContaining({ "gen_ai.request.model": "gpt-4o-mini", "gen_ai.token.type": "output", sum: 3 })
      ]))
      const latency = metric(metrics, "llm_request_latency_ms").histogram?.dataPoints ?? []
      const latencyByModel = Object.fromEntries(latency.map((p) => [String(attributes(p.attributes).model), p.count]))
      expect(latencyByModel).toMatchObject({ "gpt-4o": 2, "gpt-4o-mini": 1 })
      for (const point of latency) {
        expect(point.bucketCounts.length).toBe(point.explicitBounds.length + 1)
        expect(point.bucketCounts.reduce((a, b) => a + b, 0)).toBe(point.count)
      }
    }))

  it.live("sends protobuf by default", () =>
    Effect.gen(function* () {
      const { received } = yield* runExported(
        LlmClient.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })).pipe(
          Effect.withSpan("protobuf.root")
        ),
        { encoding: undefined }
      )
      const traces = received.filter((r) => r.path === "/v1/traces")
      expect(traces.length).toBeGreaterThan(0)
      for (const r of received) expect(r.contentType).toBe("application/x-protobuf")
      // protobuf strings are raw UTF-8: the span name and the metric names are in the bytes
      expect(Buffer.from(traces[0].bytes).toString("latin1")).toContain("protobuf.root")
      const metrics = received.find((r) => r.path === "/v1/metrics")
      expect(Buffer.from(metrics!.bytes).toString("latin1")).toContain("llm_requests_total")
    }))

  it.live("traces: false and metrics: false switch a signal off", () =>
    Effect.gen(function* () {
      const program = LlmClient.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }))
        .pipe(Effect.withSpan("switch.root"))
      const onlyTraces = yield* runExported(program, { metrics: false })
      expect(new Set(onlyTraces.received.map((r) => r.path))).toEqual(new Set(["/v1/traces"]))
      const onlyMetrics = yield* runExported(program, { traces: false })
      expect(new Set(onlyMetrics.received.map((r) => r.path))).toEqual(new Set(["/v1/metrics"]))
    }))

  it.live("exports on its interval while the program runs", () =>
    Effect.gen(function* () {
      const { received } = yield* runExported(
        Effect.gen(function* () {
          yield* LlmClient.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }))
            .pipe(Effect.withSpan("interval.root"))
          yield* Effect.sleep("400 millis")
        }),
        { tracesExportInterval: "50 millis", metricsExportInterval: "50 millis" }
      )
      // several metric exports happened before the final flush
      expect(received.filter((r) => r.path === "/v1/metrics").length).toBeGreaterThan(2)
      expect(spansOf(received).map((s) => s.name)).toContain("interval.root")
    }))

  it.live("an unreachable collector never fails the program, and closing waits at most shutdownTimeout", () =>
    Effect.gen(function* () {
      const started = Date.now()
      const answer = yield* LlmClient.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }))
        .pipe(
          Effect.withSpan("down.root"),
          Effect.provide(Client),
          Effect.provide(Otlp.layer({ url: "http://127.0.0.1:1", serviceName: "otlp-test", ...quiet, shutdownTimeout: "500 millis" }))
        )
      expect(answer.content).toBe("the answer")
      expect(Date.now() - started).toBeLessThan(5_000)
    }))

  const refused = (options: { readonly during: boolean }) =>
    Effect.scoped(Effect.gen(function* () {
      const otlp = yield* receiverWith({ status: 400 })
      const logged: Array<string> = []
      const capture = Logger.make(({ cause, message }) => {
        // rendered in the logging fiber, as any logger of the application would render it
        logged.push(`${JSON.stringify(message)} ${Cause.pretty(cause)} ${JSON.stringify(Cause.squash(cause))}`)
      })
      yield* LlmClient.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })).pipe(
        Effect.withSpan("refused.root"),
        // with a short interval, the export (and its log) happens in the exporter's own fiber during the run
        Effect.zipLeft(options.during ? Effect.sleep("300 millis") : Effect.void),
        Effect.provide(Client),
        Effect.provide(Otlp.layer({
          url: otlp.url,
          serviceName: "otlp-test",
          encoding: "json",
          ...quiet,
          ...(options.during ? { tracesExportInterval: "50 millis" } : {}),
          metrics: false,
          headers: { "x-collector-token": Redacted.make(secretHeader), authorization: `Bearer ${secretHeader}` }
        })),
        Effect.provide(Layer.merge(Logger.replace(Logger.defaultLogger, capture), Logger.minimumLogLevel(LogLevel.Debug)))
      )
      expect(otlp.received.map((r) => r.path)).toEqual(["/v1/traces"])
      expect(otlp.received[0].headers["x-collector-token"]).toBe(secretHeader)
      const text = logged.join("\n")
      expect(text).toContain("Disabling OtlpTracer")
      expect(text).toContain("400")
      expect(text).toContain("x-collector-token")
      expect(text).not.toContain(secretHeader)
    }))

  it.live("a refused final flush is logged (at debug) with the header values redacted", () => refused({ during: false }))
  it.live("a refused periodic export is logged (at debug) with the header values redacted", () => refused({ during: true }))

  it.effect("rejects bad options with every failing path, never quoting a header value", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Layer.build(Otlp.layer({
        url: "localhost:4318",
        serviceName: "",
        encoding: "xml",
        metricsExportInterval: 0,
        maxBatchSize: 0,
        headers: { authorization: Redacted.make(`Bearer ${secretHeader}\n`), "bad header": "x" },
        serviceNmae: "typo"
      } as unknown as Otlp.Options)).pipe(Effect.scoped))
      expect(error._tag).toBe("InvalidOptions")
      expect(error.issues.map((i) => i.path).sort()).toEqual([
        "encoding",
        "headers.authorization",
        "headers.bad header",
        "maxBatchSize",
        "metricsExportInterval",
        "serviceName",
        "serviceNmae",
        "url"
      ])
      expect(error.message).not.toContain(secretHeader)
    }))

  it.effect("requires url and serviceName", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Layer.build(Otlp.layer({} as Otlp.Options)).pipe(Effect.scoped))
      expect(error.issues.map((i) => i.path).sort()).toEqual(["serviceName", "url"])
    }))
})

describe("Otlp.layerConfig", () => {
  it.live("reads OpenTelemetry's environment variables (headers redacted, http/json)", () =>
    Effect.scoped(Effect.gen(function* () {
      const otlp = yield* receiver
      const config = ConfigProvider.fromMap(new Map([
        ["OTEL_EXPORTER_OTLP_ENDPOINT", `${otlp.url}/`],
        ["OTEL_SERVICE_NAME", "from-env"],
        ["OTEL_EXPORTER_OTLP_HEADERS", `x-collector-token=${encodeURIComponent("a b,=c")},x-other=1`],
        ["OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"]
      ]))
      yield* LlmClient.complete(new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })).pipe(
        Effect.withSpan("config.root"),
        Effect.provide(Client),
        Effect.provide(Otlp.layerConfig({ ...quiet, metrics: false })),
        Effect.withConfigProvider(config)
      )
      expect(otlp.received.map((r) => r.path)).toEqual(["/v1/traces"])
      const [traces] = otlp.received
      expect(traces.contentType).toMatch(/^application\/json/)
      expect(traces.headers["x-collector-token"]).toBe("a b,=c")
      expect(traces.headers["x-other"]).toBe("1")
      expect(resourcesOf(otlp.received)[0]["service.name"]).toBe("from-env")
    })))

  it.effect("fails with a ConfigError without an endpoint", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Layer.build(Otlp.layerConfig()).pipe(
        Effect.scoped,
        Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
      ))
      expect(error._tag).not.toBe("InvalidOptions")
    }))
})
