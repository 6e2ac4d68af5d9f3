/**
 * The router's per-deployment state and its memory backend. Each store method is one atomic step over one
 * deployment's record (`now` is the Effect clock's, passed in), so a shared backend (one script a method) keeps
 * replicas in agreement: calls in flight, requests and tokens of the current minute, the latency average, the
 * consecutive failures and the cooldown.
 */
import { Effect } from "effect"
import * as Quota from "./quota.js"

/** One deployment's state as the strategies read it. */
export interface DeploymentState {
  /** Calls in flight now. */
  readonly inFlight: number
  /** Effect-clock milliseconds until which the deployment is skipped (0 or past: available). */
  readonly cooldownUntil: number
  /** Exponentially weighted moving average of latency (time to first token for streams), ms; 0 without samples. */
  readonly latencyMs: number
  /** Latency samples taken into the average. */
  readonly samples: number
  /** When the last latency sample was taken (ms), -1 without samples. */
  readonly sampledAt: number
  /** Consecutive deployment failures since the last success or cooldown. */
  readonly failures: number
  /** Start (ms) of the current one-minute window of `requests` and `tokens`. */
  readonly windowStart: number
  /** Requests admitted in the current minute. */
  readonly requests: number
  /** Tokens charged in the current minute (estimates, corrected by the real usage after each call). */
  readonly tokens: number
  /**
   * The provider's quota as its rate-limit headers last said, less what was admitted since (see `internal/quota.ts`).
   * Absent until a response carried the headers, or when the router ignores them.
   */
  readonly quota?: Quota.Quota | undefined
}

/** The state of a deployment never seen. */
export const emptyState: DeploymentState = {
  inFlight: 0,
  cooldownUntil: 0,
  latencyMs: 0,
  samples: 0,
  sampledAt: -1,
  failures: 0,
  windowStart: 0,
  requests: 0,
  tokens: 0
}

/** What `begin` checks and charges atomically. */
export interface Admission {
  readonly maxConcurrent: number | undefined
  readonly rpm: number | undefined
  readonly tpm: number | undefined
  /** The call's estimated tokens (prompt + max output). */
  readonly tokens: number
  /** Whether to refuse a call the provider's quota view says would not fit before its reset. Defaults to false. */
  readonly quota?: boolean | undefined
}

/** A response's rate-limit headers, for `settle` and `observe`. */
export interface Seen {
  readonly quota: Quota.Quota
  /** The call's estimated tokens: the other calls in flight are assumed to be as large. */
  readonly estimate: number
}

/** How a call ended, for `settle`. */
export interface Outcome {
  readonly kind: "success" | "failure" | "neutral"
  /** Real tokens minus the estimate charged by `begin` (negative gives the unused part back). */
  readonly tokensDelta: number
  /** A latency sample (successes only). */
  readonly latencyMs?: number | undefined
  /** The average's weight of a new sample, in (0, 1]. */
  readonly alpha: number
  /** A sample older than this (ms) is replaced rather than averaged. */
  readonly staleBefore: number
  /** Failures: cool down at once for this long (a Retry-After, an open breaker, a bad key). */
  readonly cooldownMs?: number | undefined
  /** Failures: consecutive failures that start a cooldown of `defaultCooldownMs`. */
  readonly allowedFails: number
  readonly defaultCooldownMs: number
  /** The rate-limit headers of the call's response (or error response), when it sent them. */
  readonly seen?: Seen | undefined
}

/** What `settle` did: the cooldown it started, if any. */
export interface Settled {
  readonly cooledDownUntil: number | undefined
}

/** The store operations, over keys the router builds (`{name}:{deployment id}`). */
export interface StoreOps<E> {
  readonly read: (keys: ReadonlyArray<string>, now: number) => Effect.Effect<ReadonlyArray<DeploymentState>, E>
  readonly begin: (key: string, admission: Admission, now: number) => Effect.Effect<boolean, E>
  readonly settle: (key: string, outcome: Outcome, now: number) => Effect.Effect<Settled, E>
  /**
   * A running call's rate-limit headers (a stream's, which arrive before its first chunk). Optional: without it a
   * stream's headers count from its settle on.
   */
  readonly observe?: ((key: string, seen: Seen, now: number) => Effect.Effect<void, E>) | undefined
}

const MINUTE = 60_000

/** The state seen at `now`: a minute window that has ended is empty. */
export const rolled = (state: DeploymentState, now: number): DeploymentState => {
  const minute = now - state.windowStart >= MINUTE
    ? { ...state, windowStart: now - ((now - state.windowStart) % MINUTE), requests: 0, tokens: 0 }
    : state
  if (minute.quota === undefined) return minute
  const quota = Quota.rolled(minute.quota, now)
  return quota === minute.quota ? minute : withQuota(minute, quota)
}

const withQuota = (state: DeploymentState, quota: Quota.Quota | undefined): DeploymentState => {
  if (quota !== undefined) return { ...state, quota }
  const { quota: _, ...rest } = state
  return rest
}

/** The quota view after `seen`, with `others` other calls of this deployment still in flight. */
const observedBy = (state: DeploymentState, seen: Seen, others: number, now: number): DeploymentState =>
  withQuota(state, Quota.observed(state.quota, seen.quota, others, others * seen.estimate, now))

/** Pure `observe`: a running call's headers (itself one of the calls in flight). */
export const observeStep = (state: DeploymentState, seen: Seen, now: number): readonly [void, DeploymentState] => {
  const s = rolled(state, now)
  return [undefined, observedBy(s, seen, Math.max(0, s.inFlight - 1), now)]
}

/** Pure `begin`: whether the call fits, and the state after it. */
export const beginStep = (
  state: DeploymentState,
  admission: Admission,
  now: number
): readonly [boolean, DeploymentState] => {
  const s = rolled(state, now)
  if (admission.maxConcurrent !== undefined && s.inFlight >= admission.maxConcurrent) return [false, s]
  if (admission.rpm !== undefined && s.requests + 1 > admission.rpm) return [false, s]
  // A call larger than the whole limit is let into an empty minute rather than refused forever.
  if (admission.tpm !== undefined && s.tokens > 0 && s.tokens + admission.tokens > admission.tpm) return [false, s]
  if (admission.quota === true && Quota.waitMs(s.quota, admission.tokens, now) > 0) return [false, s]
  const next = { ...s, inFlight: s.inFlight + 1, requests: s.requests + 1, tokens: s.tokens + admission.tokens }
  return [true, s.quota === undefined ? next : withQuota(next, Quota.admit(s.quota, admission.tokens, now))]
}

const averaged = (s: DeploymentState, outcome: Outcome, now: number): DeploymentState => {
  if (outcome.latencyMs === undefined) return s
  const fresh = s.samples === 0 || s.sampledAt < outcome.staleBefore
  const latencyMs = fresh ? outcome.latencyMs : outcome.alpha * outcome.latencyMs + (1 - outcome.alpha) * s.latencyMs
  return { ...s, latencyMs, samples: fresh ? 1 : s.samples + 1, sampledAt: now }
}

/** Pure `settle`: the state after the call and the cooldown it started. */
export const settleStep = (
  state: DeploymentState,
  outcome: Outcome,
  now: number
): readonly [Settled, DeploymentState] => {
  const current = rolled(state, now)
  const rolledState = outcome.seen === undefined ? current : observedBy(current, outcome.seen, Math.max(0, current.inFlight - 1), now)
  const base: DeploymentState = {
    ...rolledState,
    inFlight: Math.max(0, rolledState.inFlight - 1),
    tokens: Math.max(0, rolledState.tokens + outcome.tokensDelta)
  }
  if (outcome.kind === "neutral") return [{ cooledDownUntil: undefined }, base]
  if (outcome.kind === "success") return [{ cooledDownUntil: undefined }, { ...averaged(base, outcome, now), failures: 0 }]
  const failures = base.failures + 1
  const cooldownMs = outcome.cooldownMs ?? (failures >= outcome.allowedFails ? outcome.defaultCooldownMs : undefined)
  if (cooldownMs === undefined) return [{ cooledDownUntil: undefined }, { ...base, failures }]
  const until = Math.max(base.cooldownUntil, now + cooldownMs)
  return [{ cooledDownUntil: until }, { ...base, failures: 0, cooldownUntil: until }]
}

/** The memory backend: one process, one Map (its keys are the configured deployments: bounded). */
export const makeMemory = (): StoreOps<never> => {
  const states = new Map<string, DeploymentState>()
  const get = (key: string) => states.get(key) ?? emptyState
  return {
    read: (keys, now) => Effect.sync(() => keys.map((key) => rolled(get(key), now))),
    begin: (key, admission, now) =>
      Effect.sync(() => {
        const [admitted, next] = beginStep(get(key), admission, now)
        states.set(key, next)
        return admitted
      }),
    settle: (key, outcome, now) =>
      Effect.sync(() => {
        const [settled, next] = settleStep(get(key), outcome, now)
        states.set(key, next)
        return settled
      }),
    observe: (key, seen, now) =>
      Effect.sync(() => {
        states.set(key, observeStep(get(key), seen, now)[1])
      })
  }
}
