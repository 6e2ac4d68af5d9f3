/**
 * The innermost step every `Embeddings` service gets (`Embeddings.make` applies it; `decorate`, `layerWith` and the
 * accessor apply it to a service lacking it), as `LlmClient.make` does for chat: per provider call the `llm_*`
 * counters (requests, latency, input tokens, cost, unpriced, estimated, failures), the GenAI histograms with
 * `gen_ai.operation.name = "embeddings"`, the input tokens a provider did not report (counted exactly, marked
 * `estimated`), and an `embeddings {model}` client span. Applied once: an instrumented service carries a mark.
 */
import { Clock, Effect, Exit, Metric, MetricLabel, Option } from "effect"
import type * as Tracer from "effect/Tracer"
import type { EmbedFn, EmbedRequest, EmbedResponse, Service } from "../Embeddings.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Pricing from "../Pricing.js"
import { inputTokensOf } from "./embeddingsPolicies.js"
import * as Telemetry from "./telemetry.js"
import { cachedHandle, withLabels } from "./telemetryKeys.js"

const Instrumented: unique symbol = Symbol.for("effect-llm-resilience/Embeddings/Instrumented")

/** The provider a service was instrumented for, or undefined. */
export const infoOf = (service: Service): Telemetry.ProviderInfo | undefined =>
  (service as { readonly [Instrumented]?: Telemetry.ProviderInfo })[Instrumented]

/** `service` marked as instrumented for `info` (a decorated service keeps its provider's mark). */
export const marked = (service: Service, info: Telemetry.ProviderInfo): Service =>
  ({ embed: service.embed, [Instrumented]: info }) as Service

const MAX_KEYS = 10_000
const label = MetricLabel.make
const A = LlmMetrics.attributes

/** The span name, as the conventions give it: `{operation} {model}`. */
export const spanName = (request: EmbedRequest): string => `embeddings ${request.model}`

interface ModelMetrics {
  readonly requests: Metric.Metric.Counter<number>
  readonly latency: Metric.Metric.Histogram<number>
  readonly inputTokens: Metric.Metric.Counter<number>
  readonly costUsd: Metric.Metric.Counter<number>
  readonly unpriced: Metric.Metric.Counter<number>
  readonly estimated: Metric.Metric.Counter<number>
  readonly genAi: ReadonlyArray<MetricLabel.MetricLabel>
  readonly failures: Map<string, readonly [Metric.Metric.Counter<number>, Metric.Metric.Histogram<number>]>
  readonly byResponse: Map<string, readonly [Metric.Metric.Histogram<number>, Metric.Metric.Histogram<number>]>
}

const makeModelMetrics = (info: Telemetry.ProviderInfo, model: string): ModelMetrics => {
  const byModel = [label("model", model)]
  return {
    requests: withLabels(LlmMetrics.requests, byModel),
    latency: withLabels(LlmMetrics.latency, byModel),
    inputTokens: withLabels(LlmMetrics.inputTokens, byModel),
    costUsd: withLabels(LlmMetrics.costUsd, byModel),
    unpriced: withLabels(LlmMetrics.unpricedCalls, byModel),
    estimated: withLabels(LlmMetrics.estimatedTokens, [...byModel, label("type", "input")]),
    genAi: [
      label(A.operationName, "embeddings"),
      label(A.providerName, info.provider),
      label(A.requestModel, model),
      ...(info.serverAddress === undefined ? [] : [label(A.serverAddress, info.serverAddress)]),
      ...(info.serverPort === undefined ? [] : [label(A.serverPort, String(info.serverPort))])
    ],
    failures: new Map(),
    byResponse: new Map()
  }
}

const remembered = <V>(map: Map<string, V>, key: string, make: () => V): V => cachedHandle(map, key, make, MAX_KEYS)

const recordSuccess = (m: ModelMetrics, model: string, ms: number, response: EmbedResponse, estimated: boolean) =>
  Effect.flatMap(Pricing.current, (pricing) => {
    const [duration, tokens] = remembered(m.byResponse, response.model, () => {
      const labels = [...m.genAi, label(A.responseModel, response.model)]
      return [
        withLabels(LlmMetrics.operationDuration, labels),
        withLabels(LlmMetrics.tokenUsage, [...labels, label(A.tokenType, "input")])
      ] as const
    })
    const input = response.usage.inputTokens
    const usd = pricing.cost(model, { inputTokens: input, outputTokens: 0 })
    return Effect.all([
      Metric.increment(m.requests),
      Metric.update(m.latency, ms),
      Metric.incrementBy(m.inputTokens, input),
      Metric.update(duration, ms / 1000),
      Metric.update(tokens, input),
      Option.isSome(usd) ? Metric.incrementBy(m.costUsd, usd.value) : Metric.increment(m.unpriced),
      estimated ? Metric.incrementBy(m.estimated, input) : Effect.void
    ], { discard: true })
  })

const recordFailure = (m: ModelMetrics, model: string, ms: number, error: string) => {
  const [failures, duration] = remembered(m.failures, error, () => [
    withLabels(LlmMetrics.failures, [label("model", model), label("error", error)]),
    withLabels(LlmMetrics.operationDuration, [...m.genAi, label(A.errorType, error)])
  ] as const)
  return Effect.all([
    Metric.increment(m.requests),
    Metric.update(m.latency, ms),
    Metric.increment(failures),
    Metric.update(duration, ms / 1000)
  ], { discard: true })
}

// A provider that reported no tokens for a non-empty input gets the exact count, marked estimated.
// A copy of the response with some fields replaced, built by the response's own class (EmbedResponse), so this
// module needs no value import of the public one (no import cycle).
const withFields = (response: EmbedResponse, fields: Partial<EmbedResponse>): EmbedResponse => {
  const Class = response.constructor as new(props: EmbedResponse, disableValidation: boolean) => EmbedResponse
  return new Class({ ...response, ...fields }, true)
}

const withUsage = (request: EmbedRequest, response: EmbedResponse): Effect.Effect<readonly [EmbedResponse, boolean]> =>
  response.usage.inputTokens > 0 || response.usage.estimated === true || request.input.every((t) => t.length === 0)
    ? Effect.succeed([response, response.usage.estimated === true] as const)
    : Effect.map(inputTokensOf(request), (inputTokens) =>
      [withFields(response, { usage: { inputTokens, estimated: true } }), true] as const)

const setSpan = (span: Tracer.Span, request: EmbedRequest, info: Telemetry.ProviderInfo) => {
  span.attribute(A.operationName, "embeddings")
  Telemetry.setProvider(span, info)
  span.attribute(A.requestModel, request.model)
}

const setOutcome = (span: Tracer.Span, response: EmbedResponse) => {
  span.attribute(A.responseModel, response.model)
  span.attribute(A.usageInputTokens, response.usage.inputTokens)
  if (response.usage.estimated === true) span.attribute(A.usageEstimated, true)
  const first = response.embeddings[0]
  if (first !== undefined) span.attribute(A.embeddingsDimensionCount, first.length)
}

const embedWith = (next: EmbedFn, info: Telemetry.ProviderInfo, metricsFor: (model: string) => ModelMetrics): EmbedFn =>
(request) =>
  Effect.withFiberRuntime((fiber) => {
    const m = metricsFor(request.model)
    const recorded = Effect.flatMap(Clock.currentTimeMillis, (start) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.matchCauseEffect(restore(next(request)), {
          onFailure: (cause) =>
            Effect.flatMap(Clock.currentTimeMillis, (end) =>
              Effect.zipRight(recordFailure(m, request.model, end - start, Telemetry.errorType(cause)), Effect.failCause(cause))),
          onSuccess: (raw) =>
            Effect.flatMap(Clock.currentTimeMillis, (end) =>
              Effect.flatMap(withUsage(request, raw), ([response, estimated]) =>
                Effect.as(recordSuccess(m, request.model, end - start, response, estimated), response)))
        })))
    if (!Telemetry.isTracing(fiber)) return recorded
    return Effect.useSpan(spanName(request), { kind: "client", captureStackTrace: false }, (span) => {
      setSpan(span, request, info)
      return Effect.onExit(Effect.withParentSpan(recorded, span), (exit) => {
        Telemetry.setExit(span, exit)
        if (Exit.isSuccess(exit)) setOutcome(span, exit.value)
        return Effect.void
      })
    })
  })

/** `service` with the innermost step applied; a service already instrumented is returned as is. */
export const instrument = (service: Service, info: Telemetry.ProviderInfo): Service => {
  if (infoOf(service) !== undefined) return service
  const models = new Map<string, ModelMetrics>()
  return marked({ embed: embedWith(service.embed, info, (model) => remembered(models, model, () => makeModelMetrics(info, model))) }, info)
}

const defaultInfo: Telemetry.ProviderInfo = { provider: "custom", serverAddress: undefined, serverPort: undefined }
const adopted = new WeakMap<Service, Service>()

/** A service put in context without `make` is instrumented once (as "custom"). */
export const instrumented = (service: Service): Service => {
  if (infoOf(service) !== undefined) return service
  let found = adopted.get(service)
  if (found === undefined) {
    found = instrument(service, defaultInfo)
    adopted.set(service, found)
  }
  return found
}
