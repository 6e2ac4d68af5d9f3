import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { describe, expect, it } from "@effect/vitest"
import { SpanKind } from "@opentelemetry/api"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import {
  ATTR_GEN_AI_EMBEDDINGS_DIMENSION_COUNT,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_PROVIDER_NAME,
  ATTR_GEN_AI_REQUEST_MODEL,
  ATTR_GEN_AI_RESPONSE_MODEL,
  ATTR_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
  GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS,
  METRIC_GEN_AI_CLIENT_OPERATION_DURATION
} from "@opentelemetry/semantic-conventions/incubating"
import { Effect, Metric, MetricLabel, Stream } from "effect"
import * as Embeddings from "../src/Embeddings.js"
import { ChatRequest, ChatResponse, type Usage } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmMetrics from "../src/LlmMetrics.js"

class KeepingExporter extends InMemorySpanExporter {
  override shutdown(): Promise<void> {
    return Promise.resolve()
  }
}
const exporter = new KeepingExporter()
const Tracing = NodeSdk.layer(() => ({
  resource: { serviceName: "cost-telemetry-test" },
  spanProcessor: new SimpleSpanProcessor(exporter)
}))

const usage: Usage = { inputTokens: 4096, outputTokens: 700, cachedInputTokens: 2048, cacheWriteInputTokens: 1024, reasoningTokens: 500 }
const chat = LlmClient.make({
  complete: (request) =>
    Effect.succeed(new ChatResponse({ id: "r1", model: request.model, content: "ok", finishReason: "stop", usage, servedFrom: "provider" })),
  stream: () => Stream.empty
}, { provider: "anthropic" })

const detail = (model: string, type: string) =>
  Metric.value(LlmMetrics.tokenDetails.pipe(Metric.taggedWithLabels([MetricLabel.make("model", model), MetricLabel.make("type", type)])))

describe("cost parts on spans and metrics, as the GenAI conventions spell them", () => {
  it.effect("cache reads, cache writes and reasoning: span attributes and llm_token_details_total by type", () =>
    Effect.gen(function*() {
      exporter.reset()
      const model = "claude-sonnet-4-5"
      const before = yield* Effect.all([detail(model, "cache_read"), detail(model, "cache_creation"), detail(model, "reasoning")])
      yield* LlmClient.complete(new ChatRequest({ model, messages: [{ role: "user", content: "hi" }] })).pipe(
        Effect.provideService(LlmClient.LlmClient, chat),
        Effect.provide(Tracing)
      )
      const [span] = exporter.getFinishedSpans().filter((s) => s.name === `chat ${model}`)
      expect(span.attributes).toMatchObject({
        [ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]: 2048,
        [ATTR_GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS]: 1024,
        [ATTR_GEN_AI_USAGE_REASONING_OUTPUT_TOKENS]: 500
      })
      const after = yield* Effect.all([detail(model, "cache_read"), detail(model, "cache_creation"), detail(model, "reasoning")])
      expect(after.map((a, i) => a.count - before[i].count)).toEqual([2048, 1024, 500])
    }))

  it.effect("an embeddings call: one 'embeddings {model}' client span, the GenAI duration with operation 'embeddings'", () =>
    Effect.gen(function*() {
      exporter.reset()
      const model = "text-embedding-3-small"
      const service = Embeddings.make({
        embed: (request) =>
          Effect.succeed(new Embeddings.EmbedResponse({ model: request.model, embeddings: request.input.map(() => [0.6, 0.8, 0]), usage: { inputTokens: 7 } }))
      }, { provider: "openai", serverAddress: "api.openai.test" })
      yield* Embeddings.embed(new Embeddings.EmbedRequest({ model, input: ["private text"] })).pipe(
        Effect.provideService(Embeddings.Embeddings, service),
        Effect.provide(Tracing)
      )
      const spans = exporter.getFinishedSpans().filter((s) => s.name === `embeddings ${model}`)
      expect(spans).toHaveLength(1)
      expect(spans[0].kind).toBe(SpanKind.CLIENT)
      expect(spans[0].attributes).toMatchObject({
        [ATTR_GEN_AI_OPERATION_NAME]: GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS,
        [ATTR_GEN_AI_PROVIDER_NAME]: "openai",
        [ATTR_GEN_AI_REQUEST_MODEL]: model,
        [ATTR_GEN_AI_RESPONSE_MODEL]: model,
        [ATTR_GEN_AI_USAGE_INPUT_TOKENS]: 7,
        [ATTR_GEN_AI_EMBEDDINGS_DIMENSION_COUNT]: 3
      })
      expect(JSON.stringify(spans[0].attributes)).not.toContain("private text")
      const histograms = (yield* Metric.snapshot).filter((p) =>
        p.metricKey.name === METRIC_GEN_AI_CLIENT_OPERATION_DURATION &&
        p.metricKey.tags.some((t) => t.key === ATTR_GEN_AI_OPERATION_NAME && t.value === "embeddings") &&
        p.metricKey.tags.some((t) => t.key === ATTR_GEN_AI_REQUEST_MODEL && t.value === model)
      )
      expect(histograms.length).toBeGreaterThan(0)
    }))
})
