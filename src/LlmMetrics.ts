/**
 * Every metric the library records, their names, the recording helpers each policy uses, the span event and
 * attribute names, the switch for prompt text on spans (`captureContent`), and `snapshot`, a summary of everything
 * recorded so far. Provider calls are recorded by the one innermost step every client gets (`LlmClient.make`), so
 * every provider's calls are, the OpenAI adapter's, FakeLlm's, `@effect/ai`'s and your own alike.
 *
 * Labels are model names, error tags, breaker keys and budget names: never prompt text, completion text or a
 * user id.
 *
 * @since 0.1.0
 */
import { Effect, FiberRef, Layer, Metric, MetricBoundaries, MetricKey, MetricLabel, Option } from "effect"
import type { Usage } from "./Llm.js"
import * as MetricNames from "./internal/metricNames.js"
import * as Snapshots from "./internal/metricsSnapshot.js"
import { fromKey, withLabels } from "./internal/telemetryKeys.js"
import * as Pricing from "./Pricing.js"

/**
 * The metric names (Prometheus style).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.names.requests // "llm_requests_total"
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const names = MetricNames.names

/**
 * Span event names: what each policy adds to the current call's span when it decides something (a retry, a
 * fallback, a breaker rejection…). Their attributes are listed in docs/observability.md; none holds prompt or
 * completion text.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.events.retry // "llm.retry"
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const events = MetricNames.events

/**
 * Span and metric attribute names, spelled as the OpenTelemetry GenAI semantic conventions spell them (plus the
 * library's own `llm.*` ones).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.attributes.requestModel // "gen_ai.request.model"
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const attributes = MetricNames.attributes

/**
 * The one switch that puts prompt and completion text on spans: when true, a call's span carries
 * `gen_ai.input.messages` and `gen_ai.output.messages` (JSON, in the shapes the GenAI conventions give). Off by
 * default: without it no span, metric or log of the library ever holds the text. Set it for a part of a program
 * with {@link withCaptureContent}, or for everything a layer builds with {@link layerCaptureContent}.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmMetrics } from "effect-llm-resilience"
 * const captured = (program: Effect.Effect<string>) => Effect.locally(program, LlmMetrics.captureContent, true)
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const captureContent: FiberRef.FiberRef<boolean> = FiberRef.unsafeMake(false)

/**
 * Runs `effect` with {@link captureContent} on: its calls' spans carry their prompt and completion text.
 *
 * @example
 * ```ts
 * import { Llm, LlmClient, LlmMetrics } from "effect-llm-resilience"
 * const request = new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] })
 * const traced = LlmMetrics.withCaptureContent(LlmClient.complete(request))
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const withCaptureContent = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.locally(effect, captureContent, true)

/**
 * A layer that turns {@link captureContent} on for the program it is provided to.
 *
 * @example
 * ```ts
 * import { Layer } from "effect"
 * import { FakeLlm, LlmMetrics } from "effect-llm-resilience"
 * const Debug = Layer.merge(FakeLlm.layer(FakeLlm.reply("ok")), LlmMetrics.layerCaptureContent)
 * ```
 * @since 0.1.0
 * @category Layers
 */
export const layerCaptureContent: Layer.Layer<never> = Layer.scopedDiscard(Effect.locallyScoped(captureContent, true))

/**
 * Latency histogram boundaries in milliseconds: exponential from 1 ms by ×1.25 (about 2 % resolution at the
 * quantiles after interpolation, up to ~15 minutes).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const boundaries = LlmMetrics.latencyBoundaries
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const latencyBoundaries = MetricBoundaries.exponential({ start: 1, factor: 1.25, count: 62 })

/**
 * Provider calls, labelled `model`.
 *
 * @example
 * ```ts
 * import { Metric } from "effect"
 * import { LlmMetrics } from "effect-llm-resilience"
 * const read = Metric.value(LlmMetrics.requests)
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const requests = fromKey(MetricKey.counter(names.requests, { description: "LLM provider calls", incremental: true }))

/**
 * Failed provider calls, labelled `model` and `error` (the error tag, or "Interrupted").
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.failures
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const failures = fromKey(
  MetricKey.counter(names.failures, { description: "Failed LLM provider calls", incremental: true })
)

/**
 * Provider call latency in milliseconds, labelled `model`.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.latency
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const latency = fromKey(MetricKey.histogram(names.latency, latencyBoundaries, "LLM provider call latency (ms)"))

// Made from their keys, so that labelling them is cheap (see internal/telemetryKeys.ts).
const counter = (name: string, description: string) => fromKey(MetricKey.counter(name, { description, incremental: true }))

/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.inputTokens */
export const inputTokens = counter(names.inputTokens, "Prompt tokens sent, labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.outputTokens */
export const outputTokens = counter(names.outputTokens, "Completion tokens received, labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.costUsd */
export const costUsd = counter(names.costUsd, "Spend in USD, labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.unpricedCalls */
export const unpricedCalls = counter(names.unpricedCalls, "Calls to a model missing from the price table")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.retries */
export const retries = counter(names.retries, "Retries, labelled model and error")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.retryBudgetExhausted */
export const retryBudgetExhausted = counter(
  names.retryBudgetExhausted,
  "Retries refused by a spent retry budget (the error is returned without retrying), labelled model and error"
)
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.fallbacks */
export const fallbacks = counter(names.fallbacks, "Fallbacks, labelled from, to and reason")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.cacheHits */
export const cacheHits = counter(names.cacheHits, "Response cache hits, labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.cacheMisses */
export const cacheMisses = counter(names.cacheMisses, "Response cache misses, labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.breakerTransitions */
export const breakerTransitions = counter(names.breakerTransitions, "Circuit breaker transitions, labelled key, from, to")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.breakerRejections */
export const breakerRejections = counter(names.breakerRejections, "Calls rejected by an open circuit, labelled key")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.breakerState */
export const breakerState = fromKey(MetricKey.gauge(names.breakerState, {
  description: "Circuit state per key: 0 closed, 1 half-open, 2 open, 3 isolated"
}))
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.bulkheadRejections */
export const bulkheadRejections = counter(names.bulkheadRejections, "Calls rejected by a full bulkhead, labelled key")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.budgetRejections */
export const budgetRejections = counter(names.budgetRejections, "Calls refused by a token budget, labelled budget")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.budgetAlerts */
export const budgetAlerts = counter(names.budgetAlerts, "Budget alert thresholds crossed, labelled budget, threshold")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.budgetSettlements */
export const budgetSettlements = counter(
  names.budgetSettlements,
  "Budget commits or refunds that failed at first, labelled budget, outcome (retried: settled later; lost: left to the lease end, which charges the worst case)"
)
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.stateEvictions */
export const stateEvictions = counter(
  names.stateEvictions,
  "Keys with live state evicted from an in-memory store by its maxKeys bound, labelled store"
)
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.trimmedRequests */
export const trimmedRequests = counter(names.trimmedRequests, "Requests whose prompt was trimmed, labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.trimmedTokens */
export const trimmedTokens = counter(names.trimmedTokens, "Prompt tokens removed by trimming, labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.idempotencyReplays */
export const idempotencyReplays = counter(names.idempotencyReplays, "Responses replayed from an idempotency record")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.rateLimited */
export const rateLimited = counter(names.rateLimited, "Calls delayed or refused by a client-side rate limit, labelled key, action")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.batches */
export const batches = counter(names.batches, "Batched provider calls, labelled model, kind (batch or resend)")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.batchItems */
export const batchItems = counter(names.batchItems, "Items carried by batched provider calls, labelled model, outcome")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.batchUnknownIds */
export const batchUnknownIds = counter(names.batchUnknownIds, "Answer entries with an id not in the batch (ignored), labelled model")
/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.tierRoutes */
export const tierRoutes = counter(names.tierRoutes, "Requests routed by ModelTier, labelled tier and reason")

/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.routerRequests */
export const routerRequests = counter(
  names.routerRequests,
  "Calls a Router sent to a deployment, labelled model, deployment and outcome (success, failure, neutral)"
)

/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.routerCooldowns */
export const routerCooldowns = counter(
  names.routerCooldowns,
  "Router deployments put in cooldown, labelled model, deployment and reason (the error's tag)"
)

/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.routerLatency */
export const routerLatency = fromKey(MetricKey.histogram(
  names.routerLatency,
  latencyBoundaries,
  "Latency of a Router deployment's successful calls (time to first token for streams), ms, labelled model and deployment"
))

/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.hedges */
export const hedges = counter(
  names.hedges,
  "Hedged attempts, labelled model and outcome (sent, won, refused: the retry budget had no room)"
)

/**
 * The parts of the counted tokens that are priced apart, labelled `model` and `type`: "cache_read" (input read
 * from the prompt cache), "cache_creation" (input written to it) and "reasoning" (output spent reasoning). Each is
 * a part of `llm_input_tokens_total` / `llm_output_tokens_total`, never extra tokens.
 *
 * @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.tokenDetails
 */
export const tokenDetails = counter(
  names.tokenDetails,
  "Token parts priced apart (cache_read, cache_creation input; reasoning output), labelled model and type"
)

/** @since 0.1.0 @category Metrics @example import { LlmMetrics } from "effect-llm-resilience"; LlmMetrics.estimatedTokens */
export const estimatedTokens = counter(
  names.estimatedTokens,
  "Tokens the library counted itself because the provider reported none, labelled model and type (input or output)"
)

/**
 * Time from a stream's request to its first chunk of text, in milliseconds, labelled `model` (one per streamed
 * provider call that received text).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.timeToFirstToken
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const timeToFirstToken = fromKey(MetricKey.histogram(
  names.timeToFirstToken,
  latencyBoundaries,
  "Time to the first chunk of text of a streamed LLM provider call (ms)"
))

/**
 * The bucket boundaries the GenAI conventions give for their duration histograms, in seconds.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const boundaries = LlmMetrics.durationBoundaries
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const durationBoundaries = MetricBoundaries.fromIterable([
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92
])

/**
 * The bucket boundaries the GenAI conventions give for `gen_ai.client.token.usage` (powers of 4).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const boundaries = LlmMetrics.tokenBoundaries
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const tokenBoundaries = MetricBoundaries.fromIterable(
  Array.from({ length: 14 }, (_, i) => 4 ** i)
)

/**
 * `gen_ai.client.operation.duration` (unit `s`): one per provider call, labelled as the GenAI conventions say
 * (`gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.response.model`,
 * `server.address`, `server.port`, `error.type` on failure).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.operationDuration
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const operationDuration = withLabels(
  fromKey(MetricKey.histogram(names.operationDuration, durationBoundaries, "Duration of a GenAI client operation (s)")),
  [MetricLabel.make("unit", "s")]
)

/**
 * `gen_ai.client.token.usage` (unit `{token}`): two per successful provider call, `gen_ai.token.type` "input"
 * and "output", with the labels of {@link operationDuration}. Estimated usage is recorded too (and counted in
 * `llm_estimated_tokens_total`).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.tokenUsage
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const tokenUsage = withLabels(
  fromKey(MetricKey.histogram(names.tokenUsage, tokenBoundaries, "Input and output tokens of a GenAI client operation")),
  [MetricLabel.make("unit", "{token}")]
)

/**
 * `gen_ai.client.operation.time_to_first_chunk` (unit `s`): one per streamed provider call that received a
 * chunk of text, measured from the request.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.timeToFirstChunk
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const timeToFirstChunk = withLabels(
  fromKey(MetricKey.histogram(
    names.timeToFirstChunk,
    durationBoundaries,
    "Time to the first chunk of a streamed GenAI client operation (s)"
  )),
  [MetricLabel.make("unit", "s")]
)

type AnyCounter = Metric.Metric.Counter<number>

// Tagged metrics are memoized: tagging builds a new MetricKey and hashes it, which is measurable on a hot path.
const taggedCache = new WeakMap<object, Map<string, Metric.Metric<any, any, any>>>()
const memoTagged = <M extends Metric.Metric<any, any, any>>(
  metric: M,
  labels: ReadonlyArray<readonly [string, string]>
): M => {
  let perMetric = taggedCache.get(metric)
  if (perMetric === undefined) {
    perMetric = new Map()
    taggedCache.set(metric, perMetric)
  }
  let key = ""
  for (const [k, v] of labels) key += `${k}\u0000${v}\u0001`
  let found = perMetric.get(key)
  if (found === undefined) {
    found = withLabels(metric, labels.map(([k, v]) => MetricLabel.make(k, v)))
    if (perMetric.size < 10_000) perMetric.set(key, found)
  }
  return found as M
}

/**
 * Adds `amount` to a counter with the given labels.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const effect = LlmMetrics.count(LlmMetrics.retries, { model: "gpt-4o", error: "ServerError" })
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const count = (
  metric: AnyCounter,
  labels: Readonly<Record<string, string>>,
  amount = 1
): Effect.Effect<void> => Metric.incrementBy(memoTagged(metric, Object.entries(labels)), amount)

/**
 * Sets a gauge with the given labels.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const effect = LlmMetrics.setGauge(LlmMetrics.breakerState, { key: "gpt-4o" }, 2)
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const setGauge = (
  metric: Metric.Metric.Gauge<number>,
  labels: Readonly<Record<string, string>>,
  value: number
): Effect.Effect<void> => Metric.set(memoTagged(metric, Object.entries(labels)), value)

/**
 * Records a provider call's usage: input and output tokens and, when the model is priced, its cost in USD
 * (else one `llm_unpriced_calls_total`).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const effect = LlmMetrics.recordUsage("gpt-4o", { inputTokens: 100, outputTokens: 20 })
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const recordUsage = (model: string, usage: Usage): Effect.Effect<void> =>
  Effect.flatMap(Pricing.cost(model, usage), (usd) =>
    Effect.all([
      count(inputTokens, { model }, usage.inputTokens),
      count(outputTokens, { model }, usage.outputTokens),
      Option.match(usd, {
        onNone: () => count(unpricedCalls, { model }),
        onSome: (value) => count(costUsd, { model }, value)
      })
    ], { discard: true }))

/**
 * Latency quantiles in milliseconds, interpolated inside the histogram's buckets (0 when nothing was recorded).
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const slow = (q: LlmMetrics.Quantiles) => q.p95 > 2000
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Quantiles {
  readonly p50: number
  readonly p95: number
  readonly p99: number
}

/**
 * What was recorded for one model (the model a request asked for): provider calls, failures, latency, time to
 * first token of streams, tokens (`estimatedTokens` of them counted by the library because the provider reported
 * none), cost, retries and cache use.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const worst = (s: LlmMetrics.Snapshot) =>
 *   Object.entries(s.byModel).sort(([, a], [, b]) => b.errorRate - a.errorRate)[0]?.[0]
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface ModelSnapshot {
  readonly requests: number
  readonly failures: number
  readonly errorRate: number
  readonly latencyMs: Quantiles
  readonly timeToFirstTokenMs: Quantiles
  readonly inputTokens: number
  readonly outputTokens: number
  readonly estimatedTokens: number
  readonly costUsd: number
  readonly unpricedCalls: number
  readonly retries: number
  readonly cacheHits: number
  readonly cacheMisses: number
  readonly cacheHitRate: number
}

/**
 * The summary of what has been recorded: `errorRate` is failures / requests, latency quantiles are
 * interpolated from the histogram, `cacheHitRate` is hits / (hits + misses), `budget` counts rejections and
 * alerts, `byModel` holds the same per model.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * const show = (s: LlmMetrics.Snapshot) => `${s.requests} calls, p99 ${s.latencyMs.p99} ms`
 * ```
 * @since 0.1.0
 * @category Models
 */
export interface Snapshot {
  readonly requests: number
  readonly failures: number
  readonly errorRate: number
  readonly latencyMs: Quantiles
  readonly timeToFirstTokenMs: Quantiles
  readonly inputTokens: number
  readonly outputTokens: number
  readonly estimatedTokens: number
  readonly costUsd: number
  readonly cacheHitRate: number
  readonly cacheHits: number
  readonly cacheMisses: number
  readonly retries: number
  readonly fallbacks: number
  readonly breakerOpens: number
  readonly breakerRejections: number
  readonly bulkheadRejections: number
  readonly trimmedTokens: number
  readonly idempotencyReplays: number
  readonly budget: { readonly rejections: number; readonly alerts: number }
  readonly byModel: Readonly<Record<string, ModelSnapshot>>
}

/**
 * A quantile (0..1) of a histogram state, linearly interpolated inside its bucket.
 *
 * @example
 * ```ts
 * import { LlmMetrics } from "effect-llm-resilience"
 * LlmMetrics.quantile([[10, 1], [20, 2]], 2, 0.5, 0, 20) // 10
 * ```
 * @since 0.1.0
 * @category Metrics
 */
export const quantile: (
  buckets: ReadonlyArray<readonly [number, number]>,
  total: number,
  q: number,
  min: number,
  max: number
) => number = Snapshots.quantile

/**
 * Reads every metric and summarises it, overall and by model.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmMetrics } from "effect-llm-resilience"
 * const program = Effect.map(LlmMetrics.snapshot, (s) => [s.errorRate, s.byModel["gpt-4o"]?.errorRate])
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const snapshot: Effect.Effect<Snapshot> = Snapshots.snapshot

/**
 * Renders a snapshot as an aligned two-column text table (for demos and logs).
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LlmMetrics } from "effect-llm-resilience"
 * const program = Effect.map(LlmMetrics.snapshot, LlmMetrics.formatTable)
 * ```
 * @since 0.1.0
 * @category Accessors
 */
export const formatTable: (s: Snapshot) => string = Snapshots.formatTable
