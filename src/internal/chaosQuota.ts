/**
 * The ChaosServer's per-model quotas: requests and tokens per fixed window (a minute by default), as a provider
 * counts them. A window starts with the first request after the last one ended. Every request of a model with a
 * quota is charged when it arrives (its prompt tokens plus `max_tokens`, or the answer it will get without one, as
 * OpenAI counts `max_tokens` up front) and every response of it carries OpenAI's `x-ratelimit-*` headers; a request
 * that does not fit is answered 429 with Retry-After (until the window ends) and charged nothing.
 */
import { Duration, Schema } from "effect"
import { DurationInput } from "./durationInput.js"

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })

const PositiveInt = Schema.Int.pipe(Schema.positive())

/** One model's quota: `rpm` requests and `tpm` tokens a window (at least one of them), `window` long. */
export const QuotaSpec = Schema.Struct({
  rpm: optional(PositiveInt),
  tpm: optional(PositiveInt),
  window: optional(DurationInput.pipe(
    Schema.filter((d) => Duration.toMillis(d) >= 1 || "Expected a window of at least 1 millisecond")
  ))
}).pipe(Schema.filter((q) => q.rpm !== undefined || q.tpm !== undefined || "Expected rpm or tpm (or both)"))

/** @internal */
export type QuotaSpec = typeof QuotaSpec.Type

/** The quotas option: per model name. */
export const Quotas = Schema.Record({ key: Schema.String, value: QuotaSpec })

/** @internal */
export type Quotas = typeof Quotas.Type

const DEFAULT_WINDOW_MS = 60_000

/** A duration as OpenAI writes its resets: "20ms", "1s", "6m0s", "1h2m3.5s". */
export const formatReset = (ms: number): string => {
  const total = Math.max(0, Math.ceil(ms))
  if (total < 1_000) return `${total}ms`
  const hours = Math.floor(total / 3_600_000)
  const minutes = Math.floor((total % 3_600_000) / 60_000)
  const seconds = (total % 60_000) / 1_000
  const s = `${Number(seconds.toFixed(3))}s`
  if (hours > 0) return `${hours}h${minutes}m${s}`
  if (minutes > 0) return `${minutes}m${s}`
  return s
}

interface Window {
  start: number
  requests: number
  tokens: number
}

/** What the quota says of one request: let in or refused, and the headers its response carries either way. */
export interface Admission {
  readonly admitted: boolean
  readonly headers: Readonly<Record<string, string>>
  /** Refused: ms until the window ends. */
  readonly retryAfterMs: number
}

const none: Admission = { admitted: true, headers: {}, retryAfterMs: 0 }

/** The quota state of one server (plain data: the server's handlers are its only writers). */
export class QuotaState {
  private readonly windows = new Map<string, Window>()

  constructor(private readonly quotas: Quotas) {}

  /** Whether `model` has a quota (only then is `take` worth its token count). */
  has(model: string): boolean {
    return Object.hasOwn(this.quotas, model)
  }

  /** Charges one request of `tokens` to `model`'s quota at `now`, or refuses it. */
  take(model: string, tokens: number, now: number): Admission {
    if (!this.has(model)) return none
    const spec = this.quotas[model]
    const windowMs = spec.window === undefined ? DEFAULT_WINDOW_MS : Duration.toMillis(spec.window)
    let w = this.windows.get(model)
    if (w === undefined || now >= w.start + windowMs) {
      w = { start: now, requests: 0, tokens: 0 }
      this.windows.set(model, w)
    }
    const fits = (spec.rpm === undefined || w.requests + 1 <= spec.rpm) &&
      (spec.tpm === undefined || w.tokens + tokens <= spec.tpm)
    if (fits) {
      w.requests += 1
      w.tokens += tokens
    }
    const resetMs = w.start + windowMs - now
    const headers: Record<string, string> = {}
    if (spec.rpm !== undefined) {
      headers["x-ratelimit-limit-requests"] = String(spec.rpm)
      headers["x-ratelimit-remaining-requests"] = String(Math.max(0, spec.rpm - w.requests))
      headers["x-ratelimit-reset-requests"] = formatReset(resetMs)
    }
    if (spec.tpm !== undefined) {
      headers["x-ratelimit-limit-tokens"] = String(spec.tpm)
      headers["x-ratelimit-remaining-tokens"] = String(Math.max(0, spec.tpm - w.tokens))
      headers["x-ratelimit-reset-tokens"] = formatReset(resetMs)
    }
    return { admitted: fits, headers, retryAfterMs: fits ? 0 : resetMs }
  }
}
