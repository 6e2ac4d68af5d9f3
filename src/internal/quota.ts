/**
 * Provider rate-limit headers as a quota view, and the pure steps that keep a local copy of it honest between
 * responses. OpenAI and every OpenAI-compatible server send, on each response (429s included):
 *
 *   x-ratelimit-limit-requests / -tokens      the quota
 *   x-ratelimit-remaining-requests / -tokens  what is left of it
 *   x-ratelimit-reset-requests / -tokens      how long until it is whole again ("1s", "6m0s", "20ms", "1h2m3.5s")
 *
 * Headers travel from the adapter to whoever wants them through {@link CurrentQuotaObserver}, a FiberRef that is
 * unset unless a consumer (the Router, RateLimit with `providerQuota`) set it around the call: an adapter reads one
 * FiberRef per call and parses nothing when nobody listens.
 *
 * The local view (what a router or limiter keeps per deployment) is conservative: each call it admits takes one
 * request and its estimated tokens off `remaining` at once; a response's headers can only lower it within a window
 * (a response may come back after a later one, carrying an older, higher count), minus the other calls still in
 * flight (which the header may not have counted yet); once `resetAt` has passed the quota is whole again.
 */
import { Effect, FiberRef, Stream } from "effect"
import { type HeaderSource, readHeader } from "./retryAfter.js"

export type { HeaderSource } from "./retryAfter.js"

/** One dimension of a quota (requests or tokens), times on the Effect clock (ms). */
export interface QuotaWindow {
  /** The whole quota, when the provider said. */
  readonly limit: number | undefined
  /** What is left of it. */
  readonly remaining: number
  /** When it is whole again (ms), when the provider said. */
  readonly resetAt: number | undefined
}

/** A quota view: requests and tokens, each when the provider reported it. */
export interface Quota {
  readonly requests: QuotaWindow | undefined
  readonly tokens: QuotaWindow | undefined
}

const units: Readonly<Record<string, number>> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 0.001, "µs": 0.001, ns: 1e-6 }
const goDuration = /^(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+$/
const goPart = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g
const plainNumber = /^\d+(?:\.\d+)?$/

/**
 * A reset value in milliseconds: a Go-style duration ("1s", "6m0s", "20ms", "1h2m3.5s"), a bare number of seconds
 * ("0.5"), or an RFC 3339 / HTTP date (relative to `now`). Anything else is undefined.
 */
export const parseReset = (text: string | undefined, now: number): number | undefined => {
  if (text === undefined) return undefined
  const value = text.trim()
  if (value === "") return undefined
  if (plainNumber.test(value)) return Number(value) * 1_000
  if (goDuration.test(value)) {
    let ms = 0
    for (const [, amount, unit] of value.matchAll(goPart)) ms += Number(amount) * units[unit]
    return ms
  }
  if (!/[a-z]/i.test(value)) return undefined
  const at = Date.parse(value)
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined
}

const count = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined
  const value = text.trim()
  return plainNumber.test(value) ? Number(value) : undefined
}

const windowOf = (headers: HeaderSource, kind: "requests" | "tokens", now: number): QuotaWindow | undefined => {
  const remaining = count(readHeader(headers, `x-ratelimit-remaining-${kind}`))
  if (remaining === undefined) return undefined
  const reset = parseReset(readHeader(headers, `x-ratelimit-reset-${kind}`), now)
  return {
    limit: count(readHeader(headers, `x-ratelimit-limit-${kind}`)),
    remaining,
    resetAt: reset === undefined ? undefined : now + Math.ceil(reset)
  }
}

/** The quota headers of a response, read at `now` (the Effect clock), or undefined when it sent none. */
export const fromHeaders = (headers: HeaderSource, now: number): Quota | undefined => {
  const requests = windowOf(headers, "requests", now)
  const tokens = windowOf(headers, "tokens", now)
  return requests === undefined && tokens === undefined ? undefined : { requests, tokens }
}

/** Who wants a response's headers: called by the adapter once a response (or an error response) has its headers. */
export type QuotaObserver = (headers: HeaderSource) => Effect.Effect<void>

/** The observers of the current call; undefined (the default) when nobody listens. */
export const CurrentQuotaObserver: FiberRef.FiberRef<QuotaObserver | undefined> = FiberRef.unsafeMake<
  QuotaObserver | undefined
>(undefined)

/** What an adapter runs when a response's headers arrive: nothing at all unless a consumer listens. */
export const report = (headers: HeaderSource | undefined): Effect.Effect<void> =>
  headers === undefined
    ? Effect.void
    : Effect.flatMap(FiberRef.get(CurrentQuotaObserver), (observer) => (observer === undefined ? Effect.void : observer(headers)))

/** `observer` added to the current call's observers (an outer one keeps listening). */
export const withObserver = (observer: QuotaObserver) => (current: QuotaObserver | undefined): QuotaObserver =>
  current === undefined ? observer : (headers) => Effect.zipRight(current(headers), observer(headers))

/** Runs `effect` with `observer` listening to its responses' headers. */
export const observe = <A, E, R>(effect: Effect.Effect<A, E, R>, observer: QuotaObserver): Effect.Effect<A, E, R> =>
  Effect.flatMap(FiberRef.get(CurrentQuotaObserver), (current) =>
    Effect.locally(effect, CurrentQuotaObserver, withObserver(observer)(current)))

/** Runs `stream` with `observer` listening to its response's headers (set while the stream is pulled). */
export const observeStream = <A, E, R>(stream: Stream.Stream<A, E, R>, observer: QuotaObserver): Stream.Stream<A, E, R> =>
  Stream.unwrapScoped(Effect.flatMap(FiberRef.get(CurrentQuotaObserver), (current) =>
    Effect.as(Effect.locallyScoped(CurrentQuotaObserver, withObserver(observer)(current)), stream)))

// ---------------------------------------------------------------------------------------------------------------
// The local view's pure steps.

const rollWindow = (w: QuotaWindow | undefined, now: number): QuotaWindow | undefined => {
  if (w === undefined || w.resetAt === undefined || now < w.resetAt) return w
  // Past its reset: whole again (its next reset is unknown until the next response says).
  return w.limit === undefined ? undefined : { limit: w.limit, remaining: w.limit, resetAt: undefined }
}

/** The view at `now`: a window whose reset has passed is whole again (or forgotten, without a known limit). */
export const rolled = (quota: Quota | undefined, now: number): Quota | undefined => {
  if (quota === undefined) return undefined
  const requests = rollWindow(quota.requests, now)
  const tokens = rollWindow(quota.tokens, now)
  if (requests === quota.requests && tokens === quota.tokens) return quota
  return requests === undefined && tokens === undefined ? undefined : { requests, tokens }
}

/**
 * How long a call of `tokens` must wait for the view to admit it (ms): 0 when it fits now (or when the view cannot
 * say: no view, or a spent window without a known reset), else until the spent window's reset. A call larger than
 * a whole token quota waits for the reset and is then let in rather than refused forever.
 */
export const waitMs = (quota: Quota | undefined, tokens: number, now: number): number => {
  const q = rolled(quota, now)
  if (q === undefined) return 0
  let wait = 0
  if (q.requests !== undefined && q.requests.remaining < 1 && q.requests.resetAt !== undefined) {
    wait = Math.max(wait, q.requests.resetAt - now)
  }
  const t = q.tokens
  // A quota still whole lets in even a call larger than all of it (else it could never run).
  if (t !== undefined && t.resetAt !== undefined && t.remaining < tokens && !(t.limit !== undefined && t.remaining >= t.limit)) {
    wait = Math.max(wait, t.resetAt - now)
  }
  return Math.max(0, wait)
}

const take = (w: QuotaWindow | undefined, amount: number): QuotaWindow | undefined =>
  w === undefined ? undefined : { ...w, remaining: w.remaining - amount }

/** The view after admitting a call of `tokens` (one request, its estimated tokens). */
export const admit = (quota: Quota | undefined, tokens: number, now: number): Quota | undefined => {
  const q = rolled(quota, now)
  return q === undefined ? undefined : { requests: take(q.requests, 1), tokens: take(q.tokens, tokens) }
}

const lower = (local: QuotaWindow | undefined, seen: QuotaWindow | undefined, others: number): QuotaWindow | undefined => {
  if (seen === undefined) return local
  const fromHeader = seen.remaining - others
  if (local === undefined) return { ...seen, remaining: fromHeader }
  const resetAt = local.resetAt === undefined ? seen.resetAt : seen.resetAt === undefined ? local.resetAt : Math.max(local.resetAt, seen.resetAt)
  return { limit: seen.limit ?? local.limit, remaining: Math.min(local.remaining, fromHeader), resetAt }
}

/**
 * The view after a response's headers (`seen`), with `othersInFlight` other calls still running (the header may not
 * count them yet; each already took its share off the local view). Within a window the view only goes down.
 */
export const observed = (quota: Quota | undefined, seen: Quota, othersInFlight: number, tokensInFlight: number, now: number): Quota => {
  const q = rolled(quota, now)
  return {
    requests: lower(q?.requests, seen.requests, othersInFlight),
    tokens: lower(q?.tokens, seen.tokens, tokensInFlight)
  }
}

/** The fraction of the view left, in [0, 1] (1 without a view or without known limits). */
export const remainingFraction = (quota: Quota | undefined, now: number): number => {
  const q = rolled(quota, now)
  if (q === undefined) return 1
  const part = (w: QuotaWindow | undefined) =>
    w === undefined || w.limit === undefined || w.limit <= 0 ? 1 : Math.max(0, Math.min(1, w.remaining / w.limit))
  return Math.min(part(q.requests), part(q.tokens))
}
