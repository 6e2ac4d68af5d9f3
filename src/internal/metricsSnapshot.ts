/**
 * `LlmMetrics.snapshot` and its table: a summary of every metric recorded so far, per model and overall, with
 * quantiles interpolated inside histogram buckets.
 */
import { Effect, Metric } from "effect"
import type { MetricPair, MetricState } from "effect"
import type { ModelSnapshot, Quantiles, Snapshot } from "../LlmMetrics.js"
import { names } from "./metricNames.js"

export const quantile = (
  buckets: ReadonlyArray<readonly [number, number]>,
  total: number,
  q: number,
  min: number,
  max: number
): number => {
  if (total === 0) return 0
  const rank = q * total
  let previousBound = 0
  let previousCount = 0
  for (const [bound, cumulative] of buckets) {
    if (cumulative >= rank && cumulative > previousCount) {
      const lower = Math.max(previousBound, min)
      const upper = Math.min(bound, max)
      if (upper <= lower) return upper
      const fraction = (rank - previousCount) / (cumulative - previousCount)
      return lower + (upper - lower) * fraction
    }
    previousBound = bound
    previousCount = cumulative
  }
  return max
}

type Pair = MetricPair.MetricPair.Untyped
type Tags = ReadonlyArray<{ readonly key: string; readonly value: string }>

const modelOf = (tags: Tags): string | undefined => tags.find((t) => t.key === "model")?.value

/** Histogram states merged (they share their boundaries), then read as quantiles. */
class Merged {
  readonly buckets = new Map<number, number>()
  count = 0
  min = Number.POSITIVE_INFINITY
  max = 0
  add(state: MetricState.MetricState.Histogram): void {
    if (state.count === 0) return
    this.count += state.count
    this.min = Math.min(this.min, state.min)
    this.max = Math.max(this.max, state.max)
    for (const [bound, cumulative] of state.buckets) this.buckets.set(bound, (this.buckets.get(bound) ?? 0) + cumulative)
  }
  quantiles(): Quantiles {
    const buckets = [...this.buckets.entries()].sort((a, b) => a[0] - b[0])
    const min = this.min === Number.POSITIVE_INFINITY ? 0 : this.min
    const at = (q: number) => round(quantile(buckets, this.count, q, min, this.max))
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99) }
  }
}

/** Sums of counters and merged histograms, overall or for one model. */
class Totals {
  readonly sums = new Map<string, number>()
  readonly latency = new Merged()
  readonly firstToken = new Merged()
  add(pair: Pair): void {
    const name = pair.metricKey.name
    if (name === names.latency) this.latency.add(pair.metricState as MetricState.MetricState.Histogram)
    else if (name === names.timeToFirstToken) this.firstToken.add(pair.metricState as MetricState.MetricState.Histogram)
    else {
      const state = pair.metricState as Partial<MetricState.MetricState.Counter<number>>
      if (state.count !== undefined) this.sums.set(name, (this.sums.get(name) ?? 0) + Number(state.count))
    }
  }
  sum(name: string): number {
    return this.sums.get(name) ?? 0
  }
  model(): ModelSnapshot {
    const requests = this.sum(names.requests)
    const failures = this.sum(names.failures)
    const hits = this.sum(names.cacheHits)
    const misses = this.sum(names.cacheMisses)
    return {
      requests,
      failures,
      errorRate: requests === 0 ? 0 : failures / requests,
      latencyMs: this.latency.quantiles(),
      timeToFirstTokenMs: this.firstToken.quantiles(),
      inputTokens: this.sum(names.inputTokens),
      outputTokens: this.sum(names.outputTokens),
      estimatedTokens: this.sum(names.estimatedTokens),
      costUsd: this.sum(names.costUsd),
      unpricedCalls: this.sum(names.unpricedCalls),
      retries: this.sum(names.retries),
      cacheHits: hits,
      cacheMisses: misses,
      cacheHitRate: hits + misses === 0 ? 0 : hits / (hits + misses)
    }
  }
}

export const snapshot: Effect.Effect<Snapshot> = Effect.map(Metric.snapshot, (pairs) => {
  const all = new Totals()
  const byModel = new Map<string, Totals>()
  let breakerOpens = 0
  for (const pair of pairs) {
    all.add(pair)
    const model = modelOf(pair.metricKey.tags)
    if (model !== undefined) {
      let totals = byModel.get(model)
      if (totals === undefined) byModel.set(model, totals = new Totals())
      totals.add(pair)
    }
    if (pair.metricKey.name === names.breakerTransitions && pair.metricKey.tags.some((t) => t.key === "to" && t.value === "open")) {
      breakerOpens += Number((pair.metricState as MetricState.MetricState.Counter<number>).count)
    }
  }
  const overall = all.model()
  return {
    requests: overall.requests,
    failures: overall.failures,
    errorRate: overall.errorRate,
    latencyMs: overall.latencyMs,
    timeToFirstTokenMs: overall.timeToFirstTokenMs,
    inputTokens: overall.inputTokens,
    outputTokens: overall.outputTokens,
    estimatedTokens: overall.estimatedTokens,
    costUsd: overall.costUsd,
    cacheHitRate: overall.cacheHitRate,
    cacheHits: overall.cacheHits,
    cacheMisses: overall.cacheMisses,
    retries: overall.retries,
    fallbacks: all.sum(names.fallbacks),
    breakerOpens,
    breakerRejections: all.sum(names.breakerRejections),
    bulkheadRejections: all.sum(names.bulkheadRejections),
    trimmedTokens: all.sum(names.trimmedTokens),
    idempotencyReplays: all.sum(names.idempotencyReplays),
    budget: { rejections: all.sum(names.budgetRejections), alerts: all.sum(names.budgetAlerts) },
    byModel: Object.fromEntries([...byModel.entries()].map(([model, totals]) => [model, totals.model()]))
  }
})

const round = (n: number): number => Math.round(n * 100) / 100

export const formatTable = (s: Snapshot): string => {
  const rows: Array<[string, string]> = [
    ["requests (provider calls)", String(s.requests)],
    ["failures", String(s.failures)],
    ["error rate", `${(s.errorRate * 100).toFixed(1)} %`],
    ["latency p50 / p95 / p99", `${s.latencyMs.p50} / ${s.latencyMs.p95} / ${s.latencyMs.p99} ms`],
    ["first token p50 / p95 / p99", `${s.timeToFirstTokenMs.p50} / ${s.timeToFirstTokenMs.p95} / ${s.timeToFirstTokenMs.p99} ms`],
    ["input tokens", String(s.inputTokens)],
    ["output tokens", String(s.outputTokens)],
    ["tokens counted (no usage reported)", String(s.estimatedTokens)],
    ["cost", `$${s.costUsd.toFixed(6)}`],
    ["cache hit rate", `${(s.cacheHitRate * 100).toFixed(1)} % (${s.cacheHits} hits)`],
    ["retries", String(s.retries)],
    ["fallbacks", String(s.fallbacks)],
    ["breaker opens", String(s.breakerOpens)],
    ["breaker rejections", String(s.breakerRejections)],
    ["bulkhead rejections", String(s.bulkheadRejections)],
    ["trimmed tokens", String(s.trimmedTokens)],
    ["idempotent replays", String(s.idempotencyReplays)],
    ["budget rejections / alerts", `${s.budget.rejections} / ${s.budget.alerts}`]
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  const valueWidth = Math.max(...rows.map(([, v]) => v.length))
  const line = `+${"-".repeat(width + 2)}+${"-".repeat(valueWidth + 2)}+`
  return [line, ...rows.map(([k, v]) => `| ${k.padEnd(width)} | ${v.padStart(valueWidth)} |`), line].join("\n")
}
