/**
 * OTLP export: spans and metrics of a fallback chain with one retry, sent to a collector. Here the collector is a
 * tiny loopback OTLP/HTTP receiver that prints what arrives; point `url` at an OpenTelemetry Collector, Grafana
 * Alloy or Jaeger (port 4318) in a real deployment. `npx tsx examples/otlp.ts`
 */
import { Effect, Layer } from "effect"
import * as Http from "node:http"
import { Fallback, FakeLlm, Llm, LlmClient, LlmError, Retry } from "../src/index.js"
import * as Otlp from "../src/Otlp.js"

interface KeyValue {
  readonly key: string
  readonly value: { readonly stringValue?: string; readonly intValue?: number | string; readonly doubleValue?: number }
}
interface Exported {
  readonly resourceSpans?: ReadonlyArray<{
    readonly scopeSpans: ReadonlyArray<{
      readonly spans: ReadonlyArray<{ readonly name: string; readonly spanId: string; readonly parentSpanId?: string }>
    }>
  }>
  readonly resourceMetrics?: ReadonlyArray<{
    readonly scopeMetrics: ReadonlyArray<{
      readonly metrics: ReadonlyArray<{
        readonly name: string
        readonly sum?: { readonly dataPoints: ReadonlyArray<{ readonly attributes: ReadonlyArray<KeyValue>; readonly asInt?: number; readonly asDouble?: number }> }
      }>
    }>
  }>
}

// A collector stand-in: accepts OTLP/HTTP JSON on 127.0.0.1 (a free port) and keeps each body.
const receiver = Effect.acquireRelease(
  Effect.async<{ readonly server: Http.Server; readonly url: string; readonly bodies: Array<Exported> }>((resume) => {
    const bodies: Array<Exported> = []
    const server = Http.createServer((req, res) => {
      let text = ""
      req.on("data", (part) => (text += part))
      req.on("end", () => {
        bodies.push(JSON.parse(text) as Exported)
        res.writeHead(200, { "content-type": "application/json" }).end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({ server, url: `http://127.0.0.1:${port}`, bodies }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
)

// gpt-4o is down: its attempt and its one retry fail, then gpt-4o-mini answers.
const Client = LlmClient.layerWith(
  Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
  Retry.policy({ maxRetries: 1, baseDelay: "10 millis" })
).pipe(Layer.provide(FakeLlm.layer(({ request }) =>
  request.model === "gpt-4o"
    ? FakeLlm.fail(new LlmError.ServerError({ status: 503, model: "gpt-4o" }))
    : FakeLlm.reply("Your order ships tomorrow.")
)))

const program = Effect.gen(function* () {
  const collector = yield* receiver
  const answer = yield* LlmClient.complete(
    new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "Where is my order?" }] })
  ).pipe(
    Effect.withSpan("support.answer"),
    Effect.provide(Client),
    // closing this layer (right after the call) flushes spans and metrics to the collector
    Effect.provide(Otlp.layer({ url: collector.url, serviceName: "support-bot", encoding: "json" }))
  )
  console.log(`answered by ${answer.model}`)

  const spans = collector.bodies.flatMap((b) => b.resourceSpans ?? []).flatMap((r) => r.scopeSpans).flatMap((s) => s.spans)
  const ids = new Set(spans.map((s) => s.spanId))
  const show = (span: (typeof spans)[number], depth: number): void => {
    console.log(`  ${"  ".repeat(depth)}${span.name}`)
    for (const child of spans.filter((s) => s.parentSpanId === span.spanId)) show(child, depth + 1)
  }
  console.log(`\n${spans.length} spans received, as a tree:`)
  for (const root of spans.filter((s) => s.parentSpanId === undefined || !ids.has(s.parentSpanId))) show(root, 0)

  const metrics = collector.bodies.flatMap((b) => b.resourceMetrics ?? []).flatMap((r) => r.scopeMetrics).flatMap((s) => s.metrics)
  console.log("\nmetric points received (llm_*):")
  for (const metric of metrics.filter((m) => m.name.startsWith("llm_") && m.sum !== undefined)) {
    for (const point of metric.sum?.dataPoints ?? []) {
      const labels = point.attributes.map((a) => `${a.key}=${a.value.stringValue ?? a.value.intValue ?? a.value.doubleValue}`)
      console.log(`  ${metric.name}{${labels.join(", ")}} ${point.asInt ?? point.asDouble}`)
    }
  }
  if (spans.length === 0 || metrics.length === 0) yield* Effect.dieMessage("nothing was exported")
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
