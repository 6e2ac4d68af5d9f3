import { Duration, Option } from "effect"

/** Something headers can be read from: a Fetch `Headers`, or a plain record (keys compared case-insensitively). */
export type HeaderSource =
  | { readonly get: (name: string) => string | null | undefined }
  | Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

/** The first value of header `name` (lower case), if present. */
export const readHeader = (headers: HeaderSource | undefined, name: string): string | undefined => {
  if (headers === undefined) return undefined
  if (typeof headers.get === "function") {
    const value = (headers as { readonly get: (name: string) => string | null | undefined }).get(name)
    return value ?? undefined
  }
  const record = headers as Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  for (const key of Object.keys(record)) {
    if (key.toLowerCase() !== name) continue
    const value = record[key]
    return typeof value === "string" ? value : value?.[0]
  }
  return undefined
}

const decimal = /^\s*\d+(?:\.\d+)?\s*$/

/** A non-negative finite number written in plain decimal notation ("1", "0.5"), else none. */
const parseDecimal = (text: string): Option.Option<number> => {
  if (!decimal.test(text)) return Option.none()
  const value = Number(text)
  return Number.isFinite(value) ? Option.some(value) : Option.none()
}

/** `retry-after-ms`: milliseconds. */
export const parseMillis = (text: string | undefined): Option.Option<Duration.Duration> =>
  text === undefined ? Option.none() : Option.map(parseDecimal(text), Duration.millis)

// An HTTP-date always names a weekday or a month, so requiring a letter keeps Date.parse's lenient
// handling of bare numbers and signs ("-5", "12") out.
const looksLikeDate = /[a-z]/i

/**
 * `retry-after`: delta-seconds, or an HTTP-date read relative to `nowMillis`. A date in the past (or now) is none.
 */
export const parseRetryAfter = (text: string | undefined, nowMillis: number): Option.Option<Duration.Duration> => {
  if (text === undefined) return Option.none()
  const seconds = parseDecimal(text)
  if (Option.isSome(seconds)) return Option.some(Duration.millis(seconds.value * 1000))
  if (!looksLikeDate.test(text)) return Option.none()
  const at = Date.parse(text)
  if (!Number.isFinite(at)) return Option.none()
  const delta = at - nowMillis
  return delta > 0 ? Option.some(Duration.millis(delta)) : Option.none()
}

/**
 * The wait a response asks for: `retry-after-ms` (milliseconds) first, then `retry-after` (seconds or an
 * HTTP-date relative to `nowMillis`). Garbage, negative values and past dates give none.
 */
export const fromHeaders = (headers: HeaderSource | undefined, nowMillis: number): Option.Option<Duration.Duration> =>
  Option.orElse(
    parseMillis(readHeader(headers, "retry-after-ms")),
    () => parseRetryAfter(readHeader(headers, "retry-after"), nowMillis)
  )
