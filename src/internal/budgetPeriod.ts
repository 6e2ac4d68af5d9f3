/**
 * Pure period math for token budgets: calendar periods in UTC and rolling windows split into buckets.
 * No clock is read here: `now` (epoch milliseconds) is always passed in.
 */

/** A calendar period, reset at its UTC boundary. */
export type CalendarUnit = "minute" | "hour" | "day" | "month"

/**
 * The window a budget counts usage in, as the store sees it.
 * - `Calendar`: usage since `start` (inclusive) until `end` (exclusive), both UTC epoch ms.
 * - `Rolling`: usage of the last `durationMs`, kept in buckets of `bucketMs`.
 */
export type Window =
  | { readonly _tag: "Calendar"; readonly start: number; readonly end: number }
  | { readonly _tag: "Rolling"; readonly durationMs: number; readonly bucketMs: number }

/** A budget period as configured: a calendar unit or a rolling duration with its bucket count. */
export type Period =
  | { readonly _tag: "Calendar"; readonly unit: CalendarUnit }
  | { readonly _tag: "Rolling"; readonly durationMs: number; readonly buckets: number }

const fixedLength: Record<Exclude<CalendarUnit, "month">, number> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000
}

/** Start and end (exclusive) of the UTC calendar period that contains `now`. */
export const calendarBounds = (unit: CalendarUnit, now: number): { readonly start: number; readonly end: number } => {
  if (unit === "month") {
    const date = new Date(now)
    const year = date.getUTCFullYear()
    const month = date.getUTCMonth()
    return { start: Date.UTC(year, month, 1), end: Date.UTC(year, month + 1, 1) }
  }
  const length = fixedLength[unit]
  const start = Math.floor(now / length) * length
  return { start, end: start + length }
}

/** Bucket length of a rolling window: `durationMs / buckets`, rounded up, at least 1 ms. */
export const bucketLength = (durationMs: number, buckets: number): number =>
  Math.max(1, Math.ceil(durationMs / Math.max(1, buckets)))

/** The window a store needs for `period` at `now`. */
export const windowAt = (period: Period, now: number): Window =>
  period._tag === "Calendar"
    ? { _tag: "Calendar", ...calendarBounds(period.unit, now) }
    : { _tag: "Rolling", durationMs: period.durationMs, bucketMs: bucketLength(period.durationMs, period.buckets) }

/** The bucket that usage charged at `now` goes into: bucket `i` covers `[i * bucketMs, (i + 1) * bucketMs)`. */
export const bucketIndex = (now: number, bucketMs: number): number => Math.floor(now / bucketMs)

/**
 * The oldest bucket that still counts at `now`. A bucket is dropped once the *latest* instant it can hold is
 * `durationMs` old, so usage is never forgotten early: usage charged at `t` expires at
 * `(bucketIndex(t) + 1) * bucketMs + durationMs`, i.e. more than `durationMs` and at most
 * `durationMs + bucketMs` after it was charged.
 */
export const oldestLiveBucket = (now: number, durationMs: number, bucketMs: number): number =>
  Math.floor((now - durationMs) / bucketMs)

/** True when usage in bucket `index` still counts at `now`. */
export const isBucketLive = (index: number, now: number, durationMs: number, bucketMs: number): boolean =>
  index >= oldestLiveBucket(now, durationMs, bucketMs)

/**
 * The bounds reported for a window at `now`: a calendar period's own bounds, or for a rolling window the start
 * of the oldest counted bucket and `now`.
 */
export const reportedBounds = (window: Window, now: number): { readonly start: number; readonly end: number } =>
  window._tag === "Calendar"
    ? { start: window.start, end: window.end }
    : { start: oldestLiveBucket(now, window.durationMs, window.bucketMs) * window.bucketMs, end: now }

/**
 * The smallest integer amount that reaches `fraction` of `limit`. Guards against float noise
 * (`0.07 * 100 = 7.000000000000001` must still be reached by 7).
 */
export const thresholdAmount = (limit: number, fraction: number): number =>
  Math.ceil(limit * fraction * (1 - 1e-12))
