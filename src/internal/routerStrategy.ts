/**
 * The router's strategies as pure orderings: given the eligible deployments, their state and a few uniform random
 * numbers (drawn by the caller from the `Random` service, so a seeded Random replays the same choices), the order in
 * which to try them. The first is the choice; the rest are the failover order.
 */
import type { DeploymentState } from "./routerStore.js"

/** The strategies. */
export type Strategy = "weighted" | "least-busy" | "latency" | "usage" | "cost"

/** One eligible deployment as a strategy sees it. */
export interface Candidate {
  /** Its position in the configuration (the result lists these). */
  readonly index: number
  readonly weight: number
  readonly rpm: number | undefined
  readonly tpm: number | undefined
  /** Estimated USD cost of this call on it, undefined when unpriced. */
  readonly cost: number | undefined
  /** The fraction of the provider's quota left (its rate-limit headers less what was sent since), 1 without one. */
  readonly quotaLeft?: number | undefined
  readonly state: DeploymentState
}

/** What the latency strategy needs besides the candidates. */
export interface LatencyRule {
  /** Samples taken before this (ms) are stale: the deployment counts as unmeasured and is tried first. */
  readonly staleBefore: number
  /** Probability of trying another deployment than the fastest. */
  readonly exploration: number
}

/**
 * Efraimidis–Spirakis keys: u^(1/w). Sorting by key, largest first, is a random permutation in which each
 * deployment comes first with probability weight / total weight.
 */
const weightedKey = (u: number, weight: number): number => (weight <= 0 ? -1 : Math.pow(Math.max(u, Number.MIN_VALUE), 1 / weight))

const byKeys = <A>(items: ReadonlyArray<A>, ...keys: ReadonlyArray<(a: A) => number>): Array<A> =>
  [...items].sort((a, b) => {
    for (const key of keys) {
      const d = key(a) - key(b)
      if (d !== 0) return d
    }
    return 0
  })

/** Remaining fraction of the minute's limits and of the provider's quota (1 without limits). */
export const remaining = (c: Candidate): number => {
  const requests = c.rpm === undefined ? 1 : 1 - c.state.requests / c.rpm
  const tokens = c.tpm === undefined ? 1 : 1 - c.state.tokens / c.tpm
  return Math.max(0, Math.min(requests, tokens, c.quotaLeft ?? 1))
}

const isMeasured = (c: Candidate, rule: LatencyRule): boolean =>
  c.state.samples > 0 && c.state.sampledAt >= rule.staleBefore

const latencyOrder = (
  candidates: ReadonlyArray<Candidate>,
  tie: (c: Candidate) => number,
  rule: LatencyRule,
  explore: number
): Array<Candidate> => {
  const ordered = byKeys(
    candidates,
    (c) => (isMeasured(c, rule) ? 1 : 0),
    (c) => (isMeasured(c, rule) ? c.state.latencyMs : 0),
    tie
  )
  // Exploration: now and then the best deployment yields to another one (the one with the best random key), so a
  // deployment that was slow is measured again and a recovery is noticed.
  if (ordered.length > 1 && explore < rule.exploration) {
    const rest = byKeys(ordered.slice(1), tie)
    return [rest[0], ordered[0], ...rest.slice(1)]
  }
  return ordered
}

/**
 * The order in which to try `candidates`. `randoms` holds `candidates.length + 1` uniform numbers in [0, 1): one
 * weighted key a candidate (ties and the weighted shuffle) and one for exploration.
 */
export const order = (
  strategy: Strategy,
  candidates: ReadonlyArray<Candidate>,
  randoms: ReadonlyArray<number>,
  rule: LatencyRule
): ReadonlyArray<number> => {
  const keys = new Map<number, number>()
  candidates.forEach((c, i) => keys.set(c.index, weightedKey(randoms[i] ?? 0, c.weight)))
  const tie = (c: Candidate) => -(keys.get(c.index) ?? 0)
  let ordered: Array<Candidate>
  switch (strategy) {
    case "weighted":
      ordered = byKeys(candidates, tie)
      break
    case "least-busy":
      ordered = byKeys(candidates, (c) => c.state.inFlight, tie)
      break
    case "latency":
      ordered = latencyOrder(candidates, tie, rule, randoms[candidates.length] ?? 1)
      break
    case "usage":
      ordered = byKeys(candidates, (c) => -remaining(c), tie)
      break
    case "cost":
      ordered = byKeys(candidates, (c) => c.cost ?? Number.MAX_VALUE, tie)
      break
  }
  return ordered.map((c) => c.index)
}
