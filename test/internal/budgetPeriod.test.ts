import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import {
  bucketIndex,
  calendarBounds,
  type CalendarUnit,
  isBucketLive,
  oldestLiveBucket,
  thresholdAmount,
  windowAt
} from "../../src/internal/budgetPeriod.js"

const utc = Date.UTC
const instant = fc.integer({ min: utc(1990, 0, 1), max: utc(2100, 0, 1) })

describe("budgetPeriod.calendarBounds", () => {
  it("months are calendar months in UTC, including the last minute of January", () => {
    expect(calendarBounds("month", utc(2025, 0, 31, 23, 59))).toEqual({ start: utc(2025, 0, 1), end: utc(2025, 1, 1) })
    expect(calendarBounds("month", utc(2025, 1, 1))).toEqual({ start: utc(2025, 1, 1), end: utc(2025, 2, 1) })
    expect(calendarBounds("month", utc(2024, 1, 29, 12))).toEqual({ start: utc(2024, 1, 1), end: utc(2024, 2, 1) })
    expect(calendarBounds("month", utc(2025, 11, 31, 23, 59, 59, 999))).toEqual({
      start: utc(2025, 11, 1),
      end: utc(2026, 0, 1)
    })
  })

  it("minutes, hours and days start at their UTC boundary", () => {
    const now = utc(2025, 5, 10, 13, 47, 12, 345)
    expect(calendarBounds("minute", now)).toEqual({ start: utc(2025, 5, 10, 13, 47), end: utc(2025, 5, 10, 13, 48) })
    expect(calendarBounds("hour", now)).toEqual({ start: utc(2025, 5, 10, 13), end: utc(2025, 5, 10, 14) })
    expect(calendarBounds("day", now)).toEqual({ start: utc(2025, 5, 10), end: utc(2025, 5, 11) })
  })

  it("every instant lies in exactly one period, and periods tile time", () =>
    fc.assert(
      fc.property(instant, fc.constantFrom<CalendarUnit>("minute", "hour", "day", "month"), (now, unit) => {
        const { end, start } = calendarBounds(unit, now)
        expect(start).toBeLessThanOrEqual(now)
        expect(now).toBeLessThan(end)
        expect(calendarBounds(unit, end).start).toBe(end)
        expect(calendarBounds(unit, start - 1).end).toBe(start)
        if (unit === "month") {
          const d = new Date(start)
          expect([d.getUTCDate(), d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds()])
            .toEqual([1, 0, 0, 0, 0])
        }
      }),
      { numRuns: 2000 }
    ))
})

describe("budgetPeriod rolling buckets", () => {
  it("usage is never forgotten before the window's duration, and always after duration + one bucket", () =>
    fc.assert(
      fc.property(
        instant,
        fc.integer({ min: 1, max: 86_400_000 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 200_000_000 }),
        (chargedAt, durationMs, buckets, elapsed) => {
          const window = windowAt({ _tag: "Rolling", durationMs, buckets }, chargedAt)
          if (window._tag !== "Rolling") throw new Error("expected a rolling window")
          const index = bucketIndex(chargedAt, window.bucketMs)
          const live = isBucketLive(index, chargedAt + elapsed, durationMs, window.bucketMs)
          if (elapsed <= durationMs) expect(live).toBe(true)
          if (elapsed >= durationMs + window.bucketMs) expect(live).toBe(false)
          expect(live).toBe(chargedAt + elapsed < (index + 1) * window.bucketMs + durationMs)
        }
      ),
      { numRuns: 2000 }
    ))

  it("a one-hour window in 60 buckets keeps a bucket until its end plus one hour", () => {
    const window = windowAt({ _tag: "Rolling", durationMs: 3_600_000, buckets: 60 }, 0)
    expect(window).toEqual({ _tag: "Rolling", durationMs: 3_600_000, bucketMs: 60_000 })
    expect(oldestLiveBucket(3_659_999, 3_600_000, 60_000)).toBe(0)
    expect(oldestLiveBucket(3_660_000, 3_600_000, 60_000)).toBe(1)
  })
})

describe("budgetPeriod.thresholdAmount", () => {
  it("is the exact ceiling of limit × percent / 100, immune to float noise", () => {
    expect(0.07 * 100).not.toBe(7)
    expect(thresholdAmount(100, 0.07)).toBe(7)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1_000_000_000 }), fc.integer({ min: 1, max: 100 }), (limit, percent) => {
        expect(thresholdAmount(limit, percent / 100)).toBe(Math.ceil((limit * percent) / 100))
      }),
      { numRuns: 5000 }
    )
  })
})
