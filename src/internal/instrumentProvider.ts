/**
 * The innermost step every `LlmClient` gets (`LlmClient.make` applies it): per provider call it records the
 * metrics, fills in usage the provider did not report, and opens the attempt span (or, for a call made without any
 * policy, the call's own span). Applied once: an instrumented client carries a mark, and instrumenting it again
 * returns it as is.
 */
import { type Cause, Chunk, Clock, Context, Duration, Effect, Exit, FiberRef, Metric, MetricLabel, Option, Stream, Tracer } from "effect"
import { ChatChunk, ChatResponse, type ChatRequest, type ToolCall, type Usage } from "../Llm.js"
import type { Complete, Service, StreamFn } from "../LlmClient.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Pricing from "../Pricing.js"
import { CurrentDeadline, withDeadline } from "./deadline.js"
import * as UsageCount from "./instrumentUsage.js"
import { isProgress } from "./streamProgress.js"
import * as Telemetry from "./telemetry.js"
import { cachedHandle, withLabels } from "./telemetryKeys.js"

const enforcesDeadline = { deadline: true } as const

const Instrumented: unique symbol = Symbol.for("effect-llm-resilience/LlmClient/Instrumented")

/** The provider a client was instrumented for, or undefined when it was not. */
export const infoOf = (service: Service): Telemetry.ProviderInfo | undefined =>
  (service as { readonly [Instrumented]?: Telemetry.ProviderInfo })[Instrumented]

/** `service` marked as instrumented for `info` (a decorated client keeps its provider's mark). */
export const marked = (service: Service, info: Telemetry.ProviderInfo): Service => ({
  complete: service.complete,
  stream: service.stream,
  enforces: service.enforces,
  [Instrumented]: info
} as Service)

type Labels = ReadonlyArray<MetricLabel.MetricLabel>
type Counter = Metric.Metric.Counter<number>
type Histogram = Metric.Metric.Histogram<number>

interface ByResponse {
  readonly duration: Histogram
  readonly input: Histogram
  readonly output: Histogram
  readonly firstChunk: Histogram
}

/** One request model's metrics, tagged once (tagging hashes a key: too slow for every call). */
interface ModelMetrics {
  readonly requests: Counter
  readonly latency: Histogram
  readonly inputTokens: Counter
  readonly outputTokens: Counter
  readonly costUsd: Counter
  readonly unpriced: Counter
  readonly estimatedInput: Counter
  readonly estimatedOutput: Counter
  /** `llm_token_details_total` by type: cache_read, cache_creation, reasoning. */
  readonly details: readonly [Counter, Counter, Counter]
  readonly firstToken: Histogram
  readonly failures: Map<string, Counter>
  readonly failedDuration: Map<string, Histogram>
  readonly byResponse: Map<string, ByResponse>
  readonly genAi: Labels
}

const MAX_KEYS = 10_000
const label = MetricLabel.make
const A = LlmMetrics.attributes

const cached = <V>(map: Map<string, V>, key: string, make: () => V): V => cachedHandle(map, key, make, MAX_KEYS)

const makeModelMetrics = (info: Telemetry.ProviderInfo, model: string): ModelMetrics => {
  const byModel = [label("model", model)]
  const genAi = [
    label(A.operationName, "chat"),
    label(A.providerName, info.provider),
    label(A.requestModel, model),
    ...(info.serverAddress === undefined ? [] : [label(A.serverAddress, info.serverAddress)]),
    ...(info.serverPort === undefined ? [] : [label(A.serverPort, String(info.serverPort))])
  ]
  return {
    requests: withLabels(LlmMetrics.requests, byModel),
    latency: withLabels(LlmMetrics.latency, byModel),
    inputTokens: withLabels(LlmMetrics.inputTokens, byModel),
    outputTokens: withLabels(LlmMetrics.outputTokens, byModel),
    costUsd: withLabels(LlmMetrics.costUsd, byModel),
    unpriced: withLabels(LlmMetrics.unpricedCalls, byModel),
    estimatedInput: withLabels(LlmMetrics.estimatedTokens, [...byModel, label("type", "input")]),
    estimatedOutput: withLabels(LlmMetrics.estimatedTokens, [...byModel, label("type", "output")]),
    details: [
      withLabels(LlmMetrics.tokenDetails, [...byModel, label("type", "cache_read")]),
      withLabels(LlmMetrics.tokenDetails, [...byModel, label("type", "cache_creation")]),
      withLabels(LlmMetrics.tokenDetails, [...byModel, label("type", "reasoning")])
    ],
    firstToken: withLabels(LlmMetrics.timeToFirstToken, byModel),
    failures: new Map(),
    failedDuration: new Map(),
    byResponse: new Map(),
    genAi
  }
}

const makeByResponse = (m: ModelMetrics, responseModel: string): ByResponse => {
  const labels = [...m.genAi, label(A.responseModel, responseModel)]
  return {
    duration: withLabels(LlmMetrics.operationDuration, labels),
    input: withLabels(LlmMetrics.tokenUsage, [...labels, label(A.tokenType, "input")]),
    output: withLabels(LlmMetrics.tokenUsage, [...labels, label(A.tokenType, "output")]),
    firstChunk: withLabels(LlmMetrics.timeToFirstChunk, labels)
  }
}

// No closure per call: this runs on every provider call.
const byResponse = (m: ModelMetrics, responseModel: string): ByResponse => {
  let found = m.byResponse.get(responseModel)
  if (found === undefined) {
    found = makeByResponse(m, responseModel)
    if (m.byResponse.size < MAX_KEYS) m.byResponse.set(responseModel, found)
  }
  return found
}

// The Pricing in context, read without an Effect step or an Option (as `Pricing.current` does).
const defaultPricing = Effect.runSync(Pricing.current)
const pricingOf = (fiber: Telemetry.AnyFiber): Pricing.Pricing["Type"] =>
  (fiber.currentContext.unsafeMap.get(Pricing.Pricing.key) as Pricing.Pricing["Type"] | undefined) ?? defaultPricing

/** Everything one provider call records, read from its fiber once at the start. */
interface Call {
  readonly metrics: ModelMetrics
  readonly tags: Labels
  readonly clock: Clock.Clock
  readonly start: number
  readonly fiber: Telemetry.AnyFiber
  readonly model: string
}

const begin = (fiber: Telemetry.AnyFiber, metrics: ModelMetrics, model: string): Call => {
  const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
  return {
    metrics,
    tags: fiber.getFiberRef(FiberRef.currentMetricLabels),
    clock,
    start: clock.unsafeCurrentTimeMillis(),
    fiber,
    model
  }
}

const recordSuccess = (
  call: Call,
  end: number,
  responseModel: string,
  usage: Usage | undefined,
  estimated: UsageCount.Missing
): void => {
  const { metrics: m, tags } = call
  const ms = end - call.start
  m.requests.unsafeUpdate(1, tags)
  m.latency.unsafeUpdate(ms, tags)
  const r = byResponse(m, responseModel)
  r.duration.unsafeUpdate(ms / 1000, tags)
  if (usage === undefined) return
  m.inputTokens.unsafeUpdate(usage.inputTokens, tags)
  m.outputTokens.unsafeUpdate(usage.outputTokens, tags)
  r.input.unsafeUpdate(usage.inputTokens, tags)
  r.output.unsafeUpdate(usage.outputTokens, tags)
  if ((estimated & UsageCount.INPUT) !== 0) m.estimatedInput.unsafeUpdate(usage.inputTokens, tags)
  if ((estimated & UsageCount.OUTPUT) !== 0) m.estimatedOutput.unsafeUpdate(usage.outputTokens, tags)
  if (usage.cachedInputTokens !== undefined) m.details[0].unsafeUpdate(usage.cachedInputTokens, tags)
  if (usage.cacheWriteInputTokens !== undefined) m.details[1].unsafeUpdate(usage.cacheWriteInputTokens, tags)
  if (usage.reasoningTokens !== undefined) m.details[2].unsafeUpdate(usage.reasoningTokens, tags)
  const usd = pricingOf(call.fiber).cost(call.model, usage)
  if (Option.isSome(usd)) m.costUsd.unsafeUpdate(usd.value, tags)
  else m.unpriced.unsafeUpdate(1, tags)
}

const recordFailure = (call: Call, end: number, cause: Cause.Cause<unknown>): void => {
  const { metrics: m, tags } = call
  const ms = end - call.start
  const error = Telemetry.errorType(cause)
  m.requests.unsafeUpdate(1, tags)
  m.latency.unsafeUpdate(ms, tags)
  cached(m.failures, error, () => withLabels(LlmMetrics.failures, [label("model", call.model), label("error", error)]))
    .unsafeUpdate(1, tags)
  cached(m.failedDuration, error, () =>
    withLabels(LlmMetrics.operationDuration, [...m.genAi, label(A.errorType, error)]))
    .unsafeUpdate(ms / 1000, tags)
}

const recordFirstChunk = (call: Call, at: number, responseModel: string): void => {
  const ms = at - call.start
  call.metrics.firstToken.unsafeUpdate(ms, call.tags)
  byResponse(call.metrics, responseModel).firstChunk.unsafeUpdate(ms / 1000, call.tags)
}

const outcomeOf = (response: ChatResponse): Telemetry.Outcome => ({
  model: response.model,
  id: response.id,
  content: response.content,
  finishReason: response.finishReason,
  toolCalls: response.toolCalls,
  usage: response.usage,
  servedFrom: response.servedFrom
})

/** The span of a provider call: an attempt inside a logical call's span, else the call's own span. */
const openSpan = (fiber: Telemetry.AnyFiber, request: ChatRequest, info: Telemetry.ProviderInfo, stream: boolean) => {
  const attempt = Telemetry.isWithinCall(fiber.currentSpan)
  const content = !attempt && fiber.getFiberRef(LlmMetrics.captureContent)
  const name = attempt ? Telemetry.attemptSpanName : Telemetry.callSpanName(request)
  const options = { kind: attempt ? "internal" : "client", captureStackTrace: false } as const
  const start = (span: Tracer.Span) => {
    if (attempt) {
      span.attribute(A.requestModel, request.model)
      Telemetry.setProvider(span, info)
    } else {
      Telemetry.markCall(span)
      Telemetry.setRequest(span, request, info, stream, content)
    }
  }
  const finish = (span: Tracer.Span, exit: Exit.Exit<unknown, unknown>, outcome: Telemetry.Outcome | undefined) => {
    Telemetry.setExit(span, exit)
    if (outcome === undefined) return
    if (attempt) span.attribute(A.responseModel, outcome.model)
    else Telemetry.setOutcome(span, outcome, content)
  }
  return { name, options, start, finish }
}

// The current Timeout deadline, for a provider that does not enforce it itself: one timer and one fiber.
const bounded = <A, E>(fiber: Telemetry.AnyFiber, call: Call, effect: Effect.Effect<A, E>) => {
  const deadline = fiber.getFiberRef(CurrentDeadline)
  if (deadline === undefined) return effect
  const remaining = deadline.at - call.start
  if (remaining <= 0) return Effect.fail(deadline.onTimeout())
  return withDeadline(effect, Duration.millis(remaining), deadline.onTimeout)
}

const completeWith = (
  next: Complete,
  info: Telemetry.ProviderInfo,
  metricsFor: (model: string) => ModelMetrics,
  enforcesDeadline: boolean
): Complete =>
(request) =>
  Effect.withFiberRuntime((fiber) => {
    const call = begin(fiber, metricsFor(request.model), request.model)
    const attempt = enforcesDeadline ? next(request) : bounded(fiber, call, next(request))
    // One uninterruptible match instead of onExit + flatMap: every outcome is recorded, an interruption too.
    const recorded = Effect.uninterruptibleMask((restore) =>
      Effect.matchCauseEffect(restore(attempt), {
        onFailure: (cause) => {
          recordFailure(call, call.clock.unsafeCurrentTimeMillis(), cause)
          return Effect.failCause(cause)
        },
        onSuccess: (response): Effect.Effect<ChatResponse> => {
          const end = call.clock.unsafeCurrentTimeMillis()
          const parts = UsageCount.missing(request, response.usage, response.content, response.toolCalls)
          if (parts === 0) {
            recordSuccess(call, end, response.model, response.usage, 0)
            return Effect.succeed(response)
          }
          return Effect.map(UsageCount.estimate(request, response.usage, response.content, response.toolCalls, parts), (usage) => {
            recordSuccess(call, end, response.model, usage, parts)
            return new ChatResponse({ ...response, usage }, true)
          })
        }
      }))
    if (!Telemetry.isTracing(fiber)) return recorded
    const span = openSpan(fiber, request, info, false)
    return Effect.useSpan(span.name, span.options, (s) => {
      span.start(s)
      return Effect.onExit(Effect.withParentSpan(recorded, s), (exit) => {
        span.finish(s, exit, Exit.isSuccess(exit) ? outcomeOf(exit.value) : undefined)
        return Effect.void
      })
    })
  })

/** What a stream has delivered so far. */
class StreamState {
  text = ""
  model: string
  finishReason: string | undefined = undefined
  toolCalls: ReadonlyArray<ToolCall> | undefined = undefined
  usage: Usage | undefined = undefined
  estimated: UsageCount.Missing = 0
  firstAt: number | undefined = undefined
  constructor(readonly request: ChatRequest) {
    this.model = request.model
  }
  missing(): UsageCount.Missing {
    return UsageCount.missing(this.request, this.usage, this.text, this.toolCalls)
  }
  estimate(parts: UsageCount.Missing): Effect.Effect<Usage> {
    return Effect.map(UsageCount.estimate(this.request, this.usage, this.text, this.toolCalls, parts), (usage) => {
      this.usage = usage
      this.estimated |= parts
      return usage
    })
  }
  outcome(): Telemetry.Outcome {
    return {
      model: this.model,
      id: undefined,
      content: this.text,
      finishReason: this.finishReason,
      toolCalls: this.toolCalls,
      usage: this.usage,
      servedFrom: "provider"
    }
  }
}

// Observes each pulled batch; the chunk that ends the answer (a finish reason or usage) gets the estimate when the
// provider's usage is missing or partial.
const observe = (state: StreamState, call: Call) => (chunks: Chunk.Chunk<ChatChunk>): Effect.Effect<Chunk.Chunk<ChatChunk>> => {
  let fill = -1
  for (let i = 0; i < chunks.length; i++) {
    const chunk = Chunk.unsafeGet(chunks, i)
    if (state.firstAt === undefined && isProgress(chunk)) {
      state.firstAt = call.clock.unsafeCurrentTimeMillis()
      recordFirstChunk(call, state.firstAt, chunk.model)
    }
    state.text += chunk.content
    state.model = chunk.model
    if (chunk.toolCalls !== undefined) state.toolCalls = chunk.toolCalls
    if (chunk.finishReason !== undefined) state.finishReason = chunk.finishReason
    if (chunk.usage !== undefined) state.usage = chunk.usage
    if (chunk.finishReason !== undefined || chunk.usage !== undefined) fill = i
  }
  if (fill < 0) return Effect.succeed(chunks)
  const parts = state.missing()
  if (parts === 0) return Effect.succeed(chunks)
  const last = Chunk.unsafeGet(chunks, fill)
  return Effect.map(state.estimate(parts), (usage) => Chunk.replace(chunks, fill, new ChatChunk({ ...last, usage }, true)))
}

// A stream that ended without reporting usage at all gets one more (empty) chunk carrying the estimate.
const tail = (state: StreamState): Stream.Stream<ChatChunk> =>
  Stream.suspend(() =>
    state.usage !== undefined
      ? Stream.empty
      : Stream.fromEffect(Effect.map(state.estimate(state.missing()), (usage) =>
        new ChatChunk({ content: "", model: state.model, usage, servedFrom: "provider" }, true)))
  )

const streamWith = (next: StreamFn, info: Telemetry.ProviderInfo, metricsFor: (model: string) => ModelMetrics): StreamFn =>
(request) =>
  Stream.unwrapScoped(Effect.withFiberRuntime((fiber) => {
    const call = begin(fiber, metricsFor(request.model), request.model)
    const state = new StreamState(request)
    const body = Stream.concat(Stream.mapChunksEffect(next(request), observe(state, call)), tail(state))
    // A consumer that stops early still charges what was received (counted, as no usage came).
    const finalize = (exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> => {
      const end = call.clock.unsafeCurrentTimeMillis()
      if (Exit.isFailure(exit)) return Effect.sync(() => recordFailure(call, end, exit.cause))
      const parts = state.missing()
      const counted = parts === 0 ? Effect.void : Effect.asVoid(state.estimate(parts))
      return Effect.map(counted, () => recordSuccess(call, end, state.model, state.usage, state.estimated))
    }
    if (!Telemetry.isTracing(fiber)) return Effect.as(Effect.addFinalizer(finalize), body)
    const span = openSpan(fiber, request, info, true)
    return Effect.map(Effect.makeSpanScoped(span.name, span.options), (s) => {
      span.start(s)
      return s
    }).pipe(
      // Added after the span's own finalizer, so it runs first: the span ends with these attributes.
      Effect.tap((s) =>
        Effect.addFinalizer((exit) =>
          Effect.map(finalize(exit), () => {
            if (state.firstAt !== undefined) s.attribute(A.responseTimeToFirstChunk, (state.firstAt - call.start) / 1000)
            span.finish(s, exit, Exit.isSuccess(exit) ? state.outcome() : undefined)
          }))
      ),
      Effect.map((s) => Stream.provideService(body, Tracer.ParentSpan, s))
    )
  }))

/**
 * `service` with the innermost step applied: metrics, usage estimation and the provider call's span. A service
 * already instrumented is returned as is.
 */
export const instrument = (service: Service, info: Telemetry.ProviderInfo): Service => {
  if (infoOf(service) !== undefined) return service
  const models = new Map<string, ModelMetrics>()
  const metricsFor = (model: string): ModelMetrics => {
    let found = models.get(model)
    if (found === undefined) {
      found = makeModelMetrics(info, model)
      if (models.size < MAX_KEYS) models.set(model, found)
    }
    return found
  }
  return marked({
    complete: completeWith(service.complete, info, metricsFor, service.enforces?.deadline === true),
    stream: streamWith(service.stream, info, metricsFor),
    // This step enforces the current deadline: the provider itself, or `bounded` for it.
    enforces: enforcesDeadline
  }, info)
}
