import { describe, expect, it } from "@effect/vitest"
import { Duration, Option } from "effect"
import * as fc from "fast-check"
import * as RetryAfter from "../../src/internal/retryAfter.js"

const now = Date.UTC(2025, 0, 15, 12, 0, 0)
const at = (offsetMs: number) => new Date(now + offsetMs).toUTCString()
const millis = (o: Option.Option<Duration.Duration>) => Option.map(o, Duration.toMillis)

describe("RetryAfter.fromHeaders", () => {
  it("reads retry-after-ms in milliseconds", () => {
    expect(millis(RetryAfter.fromHeaders(new Headers({ "retry-after-ms": "250" }), now))).toEqual(Option.some(250))
    expect(millis(RetryAfter.fromHeaders(new Headers({ "retry-after-ms": "12.5" }), now))).toEqual(Option.some(12.5))
  })

  it("reads retry-after in seconds", () => {
    expect(millis(RetryAfter.fromHeaders(new Headers({ "retry-after": "2" }), now))).toEqual(Option.some(2000))
    expect(millis(RetryAfter.fromHeaders(new Headers({ "retry-after": " 0.5 " }), now))).toEqual(Option.some(500))
    expect(millis(RetryAfter.fromHeaders(new Headers({ "retry-after": "0" }), now))).toEqual(Option.some(0))
  })

  it("reads retry-after as an HTTP date relative to now", () => {
    expect(millis(RetryAfter.fromHeaders(new Headers({ "retry-after": at(30_000) }), now))).toEqual(Option.some(30_000))
  })

  it("prefers retry-after-ms, and falls back to retry-after when it is garbage", () => {
    const both = new Headers({ "retry-after-ms": "100", "retry-after": "9" })
    expect(millis(RetryAfter.fromHeaders(both, now))).toEqual(Option.some(100))
    const badMs = new Headers({ "retry-after-ms": "soon", "retry-after": "9" })
    expect(millis(RetryAfter.fromHeaders(badMs, now))).toEqual(Option.some(9000))
  })

  it("gives none for garbage, negative numbers, past dates and no header", () => {
    for (const value of ["", "soon", "-1", "-0.5", "1e3", "Infinity", "NaN", "12abc", "0x10", at(-1000), at(0)]) {
      expect(RetryAfter.fromHeaders(new Headers({ "retry-after": value }), now)).toEqual(Option.none())
    }
    for (const value of ["-5", "abc", "Infinity"]) {
      expect(RetryAfter.fromHeaders(new Headers({ "retry-after-ms": value }), now)).toEqual(Option.none())
    }
    expect(RetryAfter.fromHeaders(new Headers(), now)).toEqual(Option.none())
    expect(RetryAfter.fromHeaders(undefined, now)).toEqual(Option.none())
  })

  it("reads plain records case-insensitively, first value of an array", () => {
    expect(millis(RetryAfter.fromHeaders({ "Retry-After": "3" }, now))).toEqual(Option.some(3000))
    expect(millis(RetryAfter.fromHeaders({ "retry-after-ms": ["40", "50"] }, now))).toEqual(Option.some(40))
  })

  it("whole seconds round-trip exactly (property)", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 10_000_000 }), (seconds) => {
      const read = millis(RetryAfter.fromHeaders({ "retry-after": String(seconds) }, now))
      return Option.getOrThrow(read) === seconds * 1000
    }))
  })

  it("never throws and never gives a negative wait, whatever the text (property)", () => {
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => {
      const read = RetryAfter.fromHeaders({ "retry-after": a, "retry-after-ms": b }, now)
      return Option.match(read, { onNone: () => true, onSome: (d) => Duration.toMillis(d) >= 0 })
    }))
  })
})
