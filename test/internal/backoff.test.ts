import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Backoff from "../../src/internal/backoff.js"
import { BudgetState, WindowCounter } from "../../src/internal/retryBudget.js"

const unit = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true })
const config = (jitter: Backoff.Jitter) =>
  fc.record({
    baseMs: fc.double({ min: 0, max: 60_000, noNaN: true }),
    factor: fc.double({ min: 1, max: 1e6, noNaN: true }),
    extraMs: fc.double({ min: 0, max: 3_600_000, noNaN: true })
  }).map(({ baseMs, extraMs, factor }): Backoff.BackoffConfig => ({ baseMs, factor, maxMs: baseMs + extraMs, jitter }))
const retry = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }))

const d = (c: Backoff.BackoffConfig, n: number) => Backoff.exponential(n, c.baseMs, c.factor, c.maxMs)

describe("backoff: jitter bounds (property tests)", () => {
  it("exponential is finite, non-negative and capped at any retry number", () => {
    fc.assert(fc.property(config("none"), retry, (c, n) => {
      const value = d(c, n)
      expect(Number.isFinite(value)).toBe(true)
      expect(value).toBeGreaterThanOrEqual(0)
      expect(value).toBeLessThanOrEqual(c.maxMs)
    }))
  })

  it("none = d", () => {
    fc.assert(fc.property(config("none"), retry, unit, (c, n, u) => {
      expect(Backoff.jittered(c, n, c.baseMs, u)).toBe(d(c, n))
    }))
  })

  it("full ∈ [0, d]", () => {
    fc.assert(fc.property(config("full"), retry, unit, (c, n, u) => {
      const value = Backoff.jittered(c, n, c.baseMs, u)
      expect(Number.isFinite(value)).toBe(true)
      expect(value).toBeGreaterThanOrEqual(0)
      expect(value).toBeLessThanOrEqual(d(c, n))
    }))
  })

  it("equal ∈ [d/2, d]", () => {
    fc.assert(fc.property(config("equal"), retry, unit, (c, n, u) => {
      const value = Backoff.jittered(c, n, c.baseMs, u)
      expect(value).toBeGreaterThanOrEqual(d(c, n) / 2)
      expect(value).toBeLessThanOrEqual(d(c, n))
    }))
  })

  it("decorrelated ∈ [base, min(cap, 3 · previous)] over a whole sequence of draws", () => {
    fc.assert(fc.property(config("decorrelated"), fc.array(unit, { minLength: 1, maxLength: 200 }), (c, draws) => {
      let previous = c.baseMs
      draws.forEach((u, i) => {
        const value = Backoff.jittered(c, i + 1, previous, u)
        expect(Number.isFinite(value)).toBe(true)
        expect(value).toBeGreaterThanOrEqual(c.baseMs)
        expect(value).toBeLessThanOrEqual(Math.min(c.maxMs, 3 * previous))
        previous = value
      })
    }))
  })

  it("out-of-range random draws are clamped, never NaN", () => {
    const c: Backoff.BackoffConfig = { baseMs: 1000, factor: 2, maxMs: 30_000, jitter: "full" }
    expect(Backoff.jittered(c, 1, 1000, Number.NaN)).toBe(0)
    expect(Backoff.jittered(c, 1, 1000, 7)).toBe(1000)
    // a non-finite previous delay counts as the cap: U[base, cap]
    expect(Backoff.jittered({ ...c, jitter: "decorrelated" }, 1, Number.POSITIVE_INFINITY, 0.5)).toBe(15_500)
  })

  it("huge attempt numbers and factors give the cap, zero base gives zero", () => {
    expect(Backoff.exponential(1e9, 1000, 2, 30_000)).toBe(30_000)
    expect(Backoff.exponential(2000, 1000, 1e308, 30_000)).toBe(30_000)
    expect(Backoff.exponential(1e9, 0, 2, 30_000)).toBe(0)
    expect(Backoff.exponential(3, 1000, 1, 30_000)).toBe(1000)
  })
})

describe("backoff: the retry decision", () => {
  const c: Backoff.BackoffConfig = { baseMs: 1000, factor: 2, maxMs: 30_000, jitter: "none" }
  const input = (overrides: Partial<Backoff.DecisionInput>): Backoff.DecisionInput => ({
    retry: 1,
    maxRetries: 3,
    retryable: true,
    retryAfterMs: undefined,
    maxRetryAfterMs: 60_000,
    ...overrides
  })

  it("stops for a non-retryable error, after maxRetries, and on a Retry-After over the maximum", () => {
    expect(Backoff.decide(c, input({ retryable: false }), 1000, 0)).toEqual({ _tag: "Stop", reason: "not-retryable" })
    expect(Backoff.decide(c, input({ retry: 4 }), 1000, 0)).toEqual({ _tag: "Stop", reason: "exhausted" })
    expect(Backoff.decide(c, input({ retryAfterMs: 60_001 }), 1000, 0)).toEqual({
      _tag: "Stop",
      reason: "retry-after-too-long"
    })
  })

  it("waits the longer of the backoff and the Retry-After (even beyond the cap)", () => {
    expect(Backoff.decide(c, input({ retry: 2, retryAfterMs: 500 }), 1000, 0)).toEqual({
      _tag: "Wait",
      delayMs: 2000,
      backoffMs: 2000
    })
    expect(Backoff.decide(c, input({ retry: 2, retryAfterMs: 45_000 }), 1000, 0)).toEqual({
      _tag: "Wait",
      delayMs: 45_000,
      backoffMs: 2000
    })
  })

  it("the delay is always finite and at least the Retry-After (property)", () => {
    fc.assert(fc.property(
      config("full"),
      unit,
      fc.option(fc.double({ min: 0, max: 60_000, noNaN: true }), { nil: undefined }),
      (cfg, u, after) => {
        const verdict = Backoff.decide(cfg, input({ retry: 1, maxRetries: Number.MAX_SAFE_INTEGER, retryAfterMs: after }), cfg.baseMs, u)
        expect(verdict._tag).toBe("Wait")
        if (verdict._tag === "Wait") {
          expect(Number.isFinite(verdict.delayMs)).toBe(true)
          expect(verdict.delayMs).toBeGreaterThanOrEqual(after ?? 0)
        }
      }
    ))
  })
})

describe("retry budget state", () => {
  it("the window counter forgets a bucket (a tenth of the window) once it is a window old", () => {
    const counter = new WindowCounter(10_000)
    counter.add(0, 5)
    counter.add(4_500, 2) // bucket [4000, 5000)
    expect(counter.sum(9_999)).toBe(7)
    expect(counter.sum(10_000)).toBe(2)
    expect(counter.sum(13_999)).toBe(2)
    expect(counter.sum(14_000)).toBe(0)
  })

  it("allows max(ratio × requests, minPerSecond × window) retries per window", () => {
    const budget = new BudgetState({ ratio: 0.2, windowMs: 10_000, minPerSecond: 1 })
    for (let i = 0; i < 100; i++) budget.deposit(0)
    let granted = 0
    while (budget.tryWithdraw(0)) granted++
    expect(granted).toBe(20)
    const small = new BudgetState({ ratio: 0.2, windowMs: 10_000, minPerSecond: 1 })
    small.deposit(0)
    granted = 0
    while (small.tryWithdraw(0)) granted++
    expect(granted).toBe(10)
  })

  it("a grant never takes the window's retries over its allowance, whatever the interleaving (property)", () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 500 })), { maxLength: 500 }),
      (ops) => {
        const budget = new BudgetState({ ratio: 0.2, windowMs: 10_000, minPerSecond: 0.5 })
        let now = 0
        for (const [isRetry, step] of ops) {
          now += step
          if (!isRetry) {
            budget.deposit(now)
            continue
          }
          const before = budget.snapshot(now)
          const granted = budget.tryWithdraw(now)
          expect(granted).toBe(before.retries + 1 <= before.allowance)
          if (granted) expect(budget.snapshot(now).retries).toBeLessThanOrEqual(before.allowance)
        }
      }
    ))
  })
})
