/**
 * Pure backoff math: exponential delays, the four jitter modes and the retry decision. No Effect, no clock,
 * no randomness source: the caller passes `random` ∈ [0, 1), so every function is exhaustively testable.
 * All times are milliseconds.
 */

/** How a computed delay is randomised. */
export type Jitter = "full" | "equal" | "decorrelated" | "none"

/** The backoff shape (milliseconds). */
export interface BackoffConfig {
  readonly baseMs: number
  readonly factor: number
  readonly maxMs: number
  readonly jitter: Jitter
}

/**
 * The exponential delay before retry number `retry` (1-based): `base · factor^(retry - 1)`, capped at `maxMs`.
 * Never NaN or Infinity, whatever the retry number (the power overflows to Infinity, which the cap absorbs).
 */
export const exponential = (retry: number, baseMs: number, factor: number, maxMs: number): number => {
  if (baseMs <= 0 || maxMs <= 0) return 0
  const exponent = Math.max(0, retry - 1)
  const raw = baseMs * Math.pow(factor, exponent)
  return Number.isFinite(raw) && raw < maxMs ? raw : maxMs
}

/**
 * The delay before retry number `retry` (1-based) with jitter applied. `previousMs` is the previous delay
 * returned by this function (decorrelated jitter grows from it; pass `baseMs` before the first retry).
 *
 * - `full`: uniform in [0, d]
 * - `equal`: uniform in [d/2, d]
 * - `decorrelated`: uniform in [base, 3 · previous], capped at `maxMs` (AWS "decorrelated jitter"; `factor` unused)
 * - `none`: d
 *
 * where d is {@link exponential}.
 */
export const jittered = (config: BackoffConfig, retry: number, previousMs: number, random: number): number => {
  const r = clampUnit(random)
  switch (config.jitter) {
    case "none":
      return exponential(retry, config.baseMs, config.factor, config.maxMs)
    case "full":
      return r * exponential(retry, config.baseMs, config.factor, config.maxMs)
    case "equal": {
      const d = exponential(retry, config.baseMs, config.factor, config.maxMs)
      const half = d / 2
      return Math.min(d, half + r * (d - half))
    }
    case "decorrelated": {
      const base = Math.min(Math.max(0, config.baseMs), config.maxMs)
      const previous = Number.isFinite(previousMs) ? Math.max(previousMs, base) : config.maxMs
      const upper = Math.min(config.maxMs, 3 * previous)
      return Math.min(config.maxMs, base + r * (Math.max(upper, base) - base))
    }
  }
}

const clampUnit = (random: number): number => (Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0)

/** Why a retry is not made. */
export type StopReason = "not-retryable" | "exhausted" | "retry-after-too-long"

/** Whether and how long to wait before the next call. */
export type Verdict =
  | { readonly _tag: "Stop"; readonly reason: StopReason }
  | {
    readonly _tag: "Wait"
    /** What to wait: the backoff, or the Retry-After when it is longer. */
    readonly delayMs: number
    /** The jittered backoff alone (the next decorrelated step grows from it). */
    readonly backoffMs: number
  }

/** Everything the retry decision needs, as plain values. */
export interface DecisionInput {
  /** The number of the retry being considered (1 = the first retry). */
  readonly retry: number
  readonly maxRetries: number
  readonly retryable: boolean
  /** The error's Retry-After, when it has one and Retry-After is honoured. */
  readonly retryAfterMs: number | undefined
  readonly maxRetryAfterMs: number
}

/**
 * The checks that need no randomness: a non-retryable error, no retries left, or a Retry-After longer than
 * `maxRetryAfterMs` (returned at once so a fallback can take over) stop; otherwise `undefined` (go on).
 */
export const precheck = (input: DecisionInput): StopReason | undefined => {
  if (!input.retryable) return "not-retryable"
  if (input.retry > input.maxRetries) return "exhausted"
  if (input.retryAfterMs !== undefined && input.retryAfterMs > input.maxRetryAfterMs) return "retry-after-too-long"
  return undefined
}

/**
 * The whole retry decision: {@link precheck}, then the jittered backoff, then the Retry-After when it is longer
 * (waited in full, even beyond `maxMs`).
 */
export const decide = (
  config: BackoffConfig,
  input: DecisionInput,
  previousMs: number,
  random: number
): Verdict => {
  const stop = precheck(input)
  if (stop !== undefined) return { _tag: "Stop", reason: stop }
  const backoffMs = jittered(config, input.retry, previousMs, random)
  const retryAfterMs = input.retryAfterMs ?? 0
  return { _tag: "Wait", delayMs: retryAfterMs > backoffMs ? retryAfterMs : backoffMs, backoffMs }
}
