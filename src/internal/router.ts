/**
 * The router's engine: for a request whose model has deployments, read their state, drop those cooling down, too
 * small for the prompt or at a limit, order the rest by the strategy, then try them in that order (each admitted
 * atomically by the store) until one answers or a caller's error stops it. Every call settles its deployment's
 * state once, whatever its exit (an interruption releases the slot and counts as nothing).
 */
import { Cause, Clock, Duration, Effect, Exit, Metric, Option, Random, Stream } from "effect"
import { ChatChunk, ChatRequest, ChatResponse } from "../Llm.js"
import type * as LlmClient from "../LlmClient.js"
import * as LlmError from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Pricing from "../Pricing.js"
import * as Tokenizer from "../Tokenizer.js"
import { isProgress } from "./streamProgress.js"
import * as Quota from "./quota.js"
import type { Admission, DeploymentState, Outcome, Seen, StoreOps } from "./routerStore.js"
import { emptyState } from "./routerStore.js"
import * as Strategy from "./routerStrategy.js"
import * as Telemetry from "./telemetry.js"

/** A deployment, validated and completed with its defaults. */
export interface Deployment {
  readonly id: string
  /** The model name requests use (the group). */
  readonly model: string
  /** The model name sent to the deployment. */
  readonly providerModel: string
  readonly client: LlmClient.Service | undefined
  readonly weight: number
  readonly rpm: number | undefined
  readonly tpm: number | undefined
  readonly maxConcurrent: number | undefined
  readonly contextWindow: number | undefined
  /** The store key. */
  readonly key: string
  /** `llm_router_latency_ms` labelled with this deployment. */
  readonly latency: Metric.Metric.Histogram<number>
}

/** The router's settings, validated. */
export interface Config {
  readonly strategy: Strategy.Strategy
  readonly groups: ReadonlyMap<string, ReadonlyArray<Deployment>>
  readonly cooldownMs: number
  readonly allowedFails: number
  readonly alpha: number
  readonly staleMs: number
  readonly exploration: number
  readonly failover: boolean
  /** Read the deployments' rate-limit headers and skip one whose quota the call would exceed until its reset. */
  readonly providerQuota: boolean
}

type Store = StoreOps<unknown>

/** What a deployment's failure means for it. */
type Verdict =
  | { readonly kind: "caller" }
  | { readonly kind: "busy" }
  | { readonly kind: "fault"; readonly cooldownMs: number | undefined }

// Errors that say the deployment itself is unusable for a while: cool it down at once.
const immediate: ReadonlySet<LlmError.Tag> = new Set<LlmError.Tag>(["CircuitOpen", "QuotaExhausted", "AuthError", "ModelNotFound"])

/** How an error counts against the deployment that returned it (LlmError's one classification first). */
export const verdictOf = (error: LlmError.LlmError, cooldownMs: number): Verdict => {
  if (error._tag === "BulkheadRejected") return { kind: "busy" }
  const after = Option.getOrUndefined(Option.map(LlmError.retryAfter(error), Duration.toMillis))
  if (LlmError.isRetryable(error)) {
    // A 429 without Retry-After still says "not now": cool down for the configured time.
    const forced = after ?? (error._tag === "RateLimited" ? cooldownMs : undefined)
    return { kind: "fault", cooldownMs: forced }
  }
  if (immediate.has(error._tag)) return { kind: "fault", cooldownMs: after ?? cooldownMs }
  return { kind: "caller" }
}

interface Plan {
  readonly order: ReadonlyArray<Deployment>
  /** Tokens charged up front: prompt + max output. */
  readonly estimate: number
  /** The error when nothing is eligible (built only then: an error captures a stack, ~10 µs). */
  readonly none: () => LlmError.LlmError
}

const promptTokens = (request: ChatRequest, needed: boolean): Effect.Effect<number> =>
  needed ? Tokenizer.countMessages(request.messages, request.model) : Effect.succeed(0)

const costOf = (pricing: Pricing.Pricing["Type"], d: Deployment, prompt: number, output: number) =>
  Option.getOrUndefined(pricing.cost(d.providerModel, { inputTokens: prompt, outputTokens: output }))

const readStates = (store: Store, group: ReadonlyArray<Deployment>, now: number) =>
  store.read(group.map((d) => d.key), now).pipe(
    Effect.catchAllCause((cause) =>
      Effect.as(
        Effect.logWarning("Router store read failed; routing without its state", Cause.squash(cause)),
        group.map(() => emptyState)
      )
    )
  )

const windowOf = (pricing: Pricing.Pricing["Type"], d: Deployment): number | undefined =>
  d.contextWindow ?? Option.getOrUndefined(Option.map(pricing.lookup(d.providerModel), (p) => p.contextWindow))

const atLimit = (d: Deployment, s: DeploymentState, estimate: number): boolean =>
  (d.rpm !== undefined && s.requests >= d.rpm) || (d.tpm !== undefined && s.tokens > 0 && s.tokens + estimate > d.tpm) ||
  (d.maxConcurrent !== undefined && s.inFlight >= d.maxConcurrent)

const noneError = (
  request: ChatRequest,
  group: ReadonlyArray<Deployment>,
  waits: ReadonlyArray<number>,
  tooSmall: ReadonlyArray<number>,
  needed: number
): LlmError.LlmError => {
  if (tooSmall.length === group.length) {
    return new LlmError.ContextTooLong({ model: request.model, contextWindow: Math.max(...tooSmall), requestedTokens: needed })
  }
  const retryAfter = Duration.millis(waits.length === 0 ? 0 : Math.max(0, Math.min(...waits)))
  return new LlmError.CircuitOpen({ key: `router:${request.model}`, model: request.model, retryAfter }, true)
}

const MINUTE = 60_000

/** Reads the state and orders the eligible deployments. */
const plan = (config: Config, store: Store, request: ChatRequest, group: ReadonlyArray<Deployment>) =>
  Effect.gen(function* () {
    const now = yield* Clock.currentTimeMillis
    const pricing = yield* Pricing.current
    const windows = group.map((d) => windowOf(pricing, d))
    const states = yield* readStates(store, group, now)
    const needsCount = config.strategy === "cost" || group.some((d, i) => d.tpm !== undefined || windows[i] !== undefined) ||
      (config.providerQuota && states.some((s) => s.quota?.tokens !== undefined))
    const prompt = yield* promptTokens(request, needsCount)
    const output = request.maxTokens ?? 0
    const estimate = prompt + output
    const candidates: Array<Strategy.Candidate> = []
    const waits: Array<number> = []
    const tooSmall: Array<number> = []
    group.forEach((d, index) => {
      const state = states[index] ?? emptyState
      const window = windows[index]
      if (window !== undefined && estimate > window) tooSmall.push(window)
      else if (state.cooldownUntil > now) waits.push(state.cooldownUntil - now)
      else if (atLimit(d, state, estimate)) {
        waits.push(d.maxConcurrent !== undefined && state.inFlight >= d.maxConcurrent ? 0 : state.windowStart + MINUTE - now)
      } else if (config.providerQuota && Quota.waitMs(state.quota, estimate, now) > 0) {
        // Proactive throttling: the provider's quota is spent (or too short for this call) until its reset.
        waits.push(Quota.waitMs(state.quota, estimate, now))
      } else {
        const cost = config.strategy === "cost" ? costOf(pricing, d, prompt, output) : undefined
        const quotaLeft = config.providerQuota ? Quota.remainingFraction(state.quota, now) : 1
        candidates.push({ index, weight: d.weight, rpm: d.rpm, tpm: d.tpm, cost, quotaLeft, state })
      }
    })
    const randoms: Array<number> = []
    for (let i = 0; i <= candidates.length; i++) randoms.push(yield* Random.next)
    const rule = { staleBefore: now - config.staleMs, exploration: config.exploration }
    const order = Strategy.order(config.strategy, candidates, randoms, rule).map((i) => group[i])
    return { order, estimate, none: () => noneError(request, group, waits, tooSmall, estimate) } satisfies Plan
  })

const admission = (config: Config, d: Deployment, estimate: number): Admission => ({
  maxConcurrent: d.maxConcurrent,
  rpm: d.rpm,
  tpm: d.tpm,
  tokens: estimate,
  quota: config.providerQuota
})

const begin = (config: Config, store: Store, d: Deployment, estimate: number) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    store.begin(d.key, admission(config, d, estimate), now).pipe(
      Effect.catchAllCause((cause) =>
        Effect.as(Effect.logWarning("Router store begin failed; the call goes ahead", Cause.squash(cause)), true)
      )
    ))

const outcomeBase = (config: Config, now: number) => ({
  alpha: config.alpha,
  staleBefore: now - config.staleMs,
  allowedFails: config.allowedFails,
  defaultCooldownMs: config.cooldownMs
})

/** Settles one call's state (once, whatever its exit) and records its metrics. */
const settle = (
  config: Config,
  store: Store,
  d: Deployment,
  kind: Outcome["kind"],
  extra: {
    readonly tokensDelta: number
    readonly latencyMs?: number | undefined
    readonly cooldownMs?: number | undefined
    readonly seen?: Seen | undefined
  },
  reason: string
): Effect.Effect<void> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    store.settle(d.key, { kind, ...outcomeBase(config, now), ...extra }, now).pipe(
      Effect.flatMap((settled) =>
        Effect.zipRight(
          Effect.zipRight(
            LlmMetrics.count(LlmMetrics.routerRequests, { model: d.model, deployment: d.id, outcome: kind }),
            extra.latencyMs === undefined ? Effect.void : Metric.update(d.latency, extra.latencyMs)
          ),
          settled.cooledDownUntil === undefined ? Effect.void : Effect.zipRight(
            LlmMetrics.count(LlmMetrics.routerCooldowns, { model: d.model, deployment: d.id, reason }),
            Telemetry.addEvent(LlmMetrics.events.routerCooldown, () => ({
              "llm.router.deployment": d.id,
              "llm.router.reason": reason,
              "llm.router.cooldown_ms": settled.cooledDownUntil! - now
            }))
          )
        )
      ),
      Effect.catchAllCause((cause) => Effect.logWarning("Router store settle failed", Cause.squash(cause)))
    ))

const requestFor = (request: ChatRequest, d: Deployment): ChatRequest =>
  request.model === d.providerModel ? request : new ChatRequest({ ...request, model: d.providerModel }, true)

const routed = (d: Deployment) =>
  Telemetry.addEvent(LlmMetrics.events.routerRoute, () => ({ "llm.router.deployment": d.id }))

const usageTotal = (usage: { readonly inputTokens: number; readonly outputTokens: number } | undefined) =>
  usage === undefined ? undefined : usage.inputTokens + usage.outputTokens

/** Settles a failed call; true when the router may try the next deployment. */
const settleFailure = (config: Config, store: Store, d: Deployment, error: LlmError.LlmError, seen?: Seen | undefined) => {
  const verdict = verdictOf(error, config.cooldownMs)
  const kind = verdict.kind === "fault" ? "failure" : "neutral"
  const cooldownMs = verdict.kind === "fault" ? verdict.cooldownMs : undefined
  return Effect.as(
    settle(config, store, d, kind, { tokensDelta: 0, cooldownMs, seen }, error._tag),
    config.failover && verdict.kind !== "caller"
  )
}

/**
 * A completion's rate-limit headers, kept for its settle (one store step): `call` runs with an observer when the
 * router reads them, and `seen()` gives what its response (or error response) said.
 */
const headersOf = (config: Config, estimate: number) => {
  let seen: Seen | undefined
  const observer: Quota.QuotaObserver = (headers) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const quota = Quota.fromHeaders(headers, now)
      if (quota !== undefined) seen = { quota, estimate }
    })
  return {
    watch: <A, E, R>(call: Effect.Effect<A, E, R>) => (config.providerQuota ? Quota.observe(call, observer) : call),
    seen: () => seen
  }
}

/** The completion path. */
export const complete = (config: Config, store: Store, next: LlmClient.Complete): LlmClient.Complete => (request) => {
  const group = config.groups.get(request.model)
  if (group === undefined) return next(request)
  return Effect.flatMap(plan(config, store, request, group), (p) => {
    const attempt = (i: number, last: LlmError.LlmError | undefined): Effect.Effect<ChatResponse, LlmError.LlmError> => {
      if (i >= p.order.length) return Effect.fail(last ?? p.none())
      const d = p.order[i]
      // begin and its settle are one uninterruptible region (the call itself stays interruptible): a caller
      // interrupted while its begin is on its way to the store still settles what the store counted.
      return Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(begin(config, store, d, p.estimate), (admitted) => {
          if (!admitted) return restore(attempt(i + 1, last))
          const headers = headersOf(config, p.estimate)
          const call = headers.watch(d.client === undefined ? next(requestFor(request, d)) : d.client.complete(requestFor(request, d)))
          return Effect.flatMap(Effect.zip(Clock.currentTimeMillis, Effect.exit(restore(Effect.zipRight(routed(d), call)))), ([start, exit]) => {
            const seen = headers.seen()
            if (Exit.isSuccess(exit)) {
              return Effect.flatMap(Clock.currentTimeMillis, (end) => {
                const used = usageTotal(exit.value.usage) ?? p.estimate
                const response = new ChatResponse({ ...exit.value, deployment: d.id }, true)
                const outcome = { tokensDelta: used - p.estimate, latencyMs: end - start, seen }
                return Effect.as(settle(config, store, d, "success", outcome, "success"), response)
              })
            }
            const failure = Cause.failureOption(exit.cause)
            if (Option.isNone(failure)) return Effect.zipRight(settle(config, store, d, "neutral", { tokensDelta: 0, seen }, "interrupted"), exit)
            return Effect.flatMap(settleFailure(config, store, d, failure.value, seen), (more) =>
              more ? restore(attempt(i + 1, failure.value)) : Effect.fail(failure.value))
          })
        })
      )
    }
    return attempt(0, undefined)
  })
}

/** The streaming path: failover only before the stream has started (its first real delta). */
export const stream = (config: Config, store: Store, next: LlmClient.StreamFn): LlmClient.StreamFn => (request) => {
  const group = config.groups.get(request.model)
  if (group === undefined) return next(request)
  return Stream.unwrap(Effect.map(plan(config, store, request, group), (p) => {
    const attempt = (i: number, last: LlmError.LlmError | undefined): Stream.Stream<ChatChunk, LlmError.LlmError> => {
      if (i >= p.order.length) return Stream.fail(last ?? p.none())
      const d = p.order[i]
      // As for a completion, a begin is always settled: if the stream never runs (its consumer interrupted while
      // the begin was on its way back), the scope's finalizer settles it as nothing.
      return Stream.unwrapScoped(Effect.uninterruptible(Effect.flatMap(begin(config, store, d, p.estimate), (admitted) => {
        if (!admitted) return Effect.succeed(attempt(i + 1, last))
        const once = { settled: false }
        return Effect.zipRight(
          Effect.addFinalizer(() => {
            if (once.settled) return Effect.void
            once.settled = true
            return settle(config, store, d, "neutral", { tokensDelta: 0 }, "interrupted")
          }),
          Effect.map(Clock.currentTimeMillis, (start) =>
            deploymentStream(config, store, p, d, request, next, start, once, (error) => attempt(i + 1, error)))
        )
      })))
    }
    return attempt(0, undefined)
  }))
}

const deploymentStream = (
  config: Config,
  store: Store,
  p: Plan,
  d: Deployment,
  request: ChatRequest,
  next: LlmClient.StreamFn,
  start: number,
  once: { settled: boolean },
  failover: (error: LlmError.LlmError) => Stream.Stream<ChatChunk, LlmError.LlmError>
): Stream.Stream<ChatChunk, LlmError.LlmError> => {
  let firstTokenMs: number | undefined
  let used: number | undefined
  const raw = d.client === undefined ? next(requestFor(request, d)) : d.client.stream(requestFor(request, d))
  // A stream's headers arrive before its first chunk: recorded then (in the background), and again at its settle.
  let seen: Seen | undefined
  const chunks = config.providerQuota ? Quota.observeStream(raw, (headers) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const quota = Quota.fromHeaders(headers, now)
      if (quota === undefined) return Effect.void
      seen = { quota, estimate: p.estimate }
      if (store.observe === undefined) return Effect.void
      const recorded = store.observe(d.key, seen, now).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning("Router store observe failed", Cause.squash(cause)))
      )
      return Effect.asVoid(Effect.forkDaemon(recorded))
    })) : raw
  const tagged = Stream.mapEffect(chunks, (chunk) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      if (firstTokenMs === undefined && isProgress(chunk)) firstTokenMs = now - start
      if (chunk.usage !== undefined) used = usageTotal(chunk.usage)
      return chunk.finishReason === undefined ? chunk : new ChatChunk({ ...chunk, deployment: d.id }, true)
    }))
  const finished = Stream.ensuringWith(Stream.concat(Stream.fromEffect(routed(d)).pipe(Stream.drain), tagged), (exit) => {
    if (once.settled) return Effect.void
    once.settled = true
    if (Exit.isSuccess(exit)) {
      return settle(config, store, d, "success", { tokensDelta: (used ?? p.estimate) - p.estimate, latencyMs: firstTokenMs, seen }, "success")
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isNone(failure)) return settle(config, store, d, "neutral", { tokensDelta: 0, seen }, "interrupted")
    const error = failure.value
    // A stream that failed after it started is not failed over; its deployment is charged all the same.
    return settleFailure(config, store, d, error, seen)
  })
  return Stream.catchAll(finished, (error) => {
    const verdict = verdictOf(error, config.cooldownMs)
    return firstTokenMs === undefined && config.failover && verdict.kind !== "caller" ? failover(error) : Stream.fail(error)
  })
}
