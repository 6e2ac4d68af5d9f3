import { describe, expect, it } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { type Amount, type Limits, TokenBudgetStore, type Window } from "../../src/TokenBudget.js"

let counter = 0
const uniqueKey = (label: string) => `contract:budget:${label}:${Date.now().toString(36)}:${++counter}`

/** 2025-03-10T00:00:00Z: inside a day, a month and a minute boundary all at once. */
const T0 = Date.UTC(2025, 2, 10)
const DAY = 86_400_000
const day = (start: number): Window => ({ _tag: "Calendar", start, end: start + DAY })
const hourRolling: Window = { _tag: "Rolling", durationMs: 3_600_000, bucketMs: 60_000 }
const LEASE = 600_000

const tokens = (n: number): Amount => ({ tokens: n, nanoUsd: 0 })
const limitTokens = (n: number): Limits => ({ tokens: n })

/**
 * The contract every TokenBudgetStore backend passes (memory now, Redis with the same suite): each method is one
 * atomic step; `now` and the window come from the caller.
 */
export const tokenBudgetStoreContract = (name: string, layer: Layer.Layer<TokenBudgetStore>) =>
  describe(`TokenBudgetStore contract: ${name}`, () => {
    const reserve = (key: string, id: string, amount: Amount, limits: Limits, window: Window, now: number, lease = LEASE) =>
      Effect.flatMap(TokenBudgetStore, (store) =>
        store.reserve({ key, reservationId: id, amount, limits, window, now, expiresAt: now + lease }))
    const commit = (
      key: string,
      id: string,
      actual: Amount,
      limits: Limits,
      window: Window,
      now: number,
      alertAt: ReadonlyArray<number> = []
    ) =>
      Effect.flatMap(TokenBudgetStore, (store) =>
        store.commit({ key, reservationId: id, actual, limits, alertAt, window, now }))
    const refund = (key: string, id: string, window: Window, now: number) =>
      Effect.flatMap(TokenBudgetStore, (store) => store.refund({ key, reservationId: id, window, now }))
    const read = (key: string, window: Window, now: number) =>
      Effect.flatMap(TokenBudgetStore, (store) => store.usage({ key, window, now }))

    it.effect("an unknown key has nothing used or reserved, within the caller's period", () =>
      Effect.gen(function* () {
        const snapshot = yield* read(uniqueKey("empty"), day(T0), T0 + 5)
        expect(snapshot).toEqual({
          used: { tokens: 0, nanoUsd: 0 },
          reserved: { tokens: 0, nanoUsd: 0 },
          periodStart: T0,
          periodEnd: T0 + DAY
        })
      }).pipe(Effect.provide(layer)))

    it.effect("reserve admits up to the limit exactly and rejects one more, holding nothing on rejection", () =>
      Effect.gen(function* () {
        const key = uniqueKey("limit")
        const first = yield* reserve(key, "a", tokens(600), limitTokens(1000), day(T0), T0)
        expect(first._tag).toBe("Reserved")
        const second = yield* reserve(key, "b", tokens(400), limitTokens(1000), day(T0), T0)
        expect(second._tag).toBe("Reserved")
        expect(second.snapshot.reserved.tokens).toBe(1000)
        const third = yield* reserve(key, "c", tokens(1), limitTokens(1000), day(T0), T0)
        expect(third).toMatchObject({ _tag: "Rejected", unit: "tokens", requested: 1, remaining: 0 })
        expect((yield* read(key, day(T0), T0)).reserved.tokens).toBe(1000)
        yield* refund(key, "a", day(T0), T0)
        const fourth = yield* reserve(key, "d", tokens(601), limitTokens(1000), day(T0), T0)
        expect(fourth).toMatchObject({ _tag: "Rejected", requested: 601, remaining: 600 })
      }).pipe(Effect.provide(layer)))

    it.effect("every limited unit must fit; an unlimited unit is ignored", () =>
      Effect.gen(function* () {
        const key = uniqueKey("units")
        const limits: Limits = { tokens: 1000, nanoUsd: 5_000_000 }
        const amount: Amount = { tokens: 10, nanoUsd: 6_000_000 }
        const rejected = yield* reserve(key, "a", amount, limits, day(T0), T0)
        expect(rejected).toMatchObject({ _tag: "Rejected", unit: "usd", requested: 6_000_000, remaining: 5_000_000 })
        const tokensOnly = yield* reserve(key, "b", amount, { tokens: 1000 }, day(T0), T0)
        expect(tokensOnly._tag).toBe("Reserved")
        expect(tokensOnly.snapshot.reserved).toEqual(amount)
      }).pipe(Effect.provide(layer)))

    it.effect("reserving the same id twice holds it once", () =>
      Effect.gen(function* () {
        const key = uniqueKey("twice")
        yield* reserve(key, "a", tokens(300), limitTokens(500), day(T0), T0)
        const again = yield* reserve(key, "a", tokens(300), limitTokens(500), day(T0), T0)
        expect(again._tag).toBe("Reserved")
        expect(again.snapshot.reserved.tokens).toBe(300)
      }).pipe(Effect.provide(layer)))

    it.effect("commit replaces the reservation by the actual usage", () =>
      Effect.gen(function* () {
        const key = uniqueKey("commit")
        yield* reserve(key, "a", { tokens: 500, nanoUsd: 9_000 }, limitTokens(1000), day(T0), T0)
        const result = yield* commit(key, "a", { tokens: 120, nanoUsd: 2_000 }, limitTokens(1000), day(T0), T0 + 10)
        expect(result.found).toBe(true)
        expect(result.snapshot).toMatchObject({ used: { tokens: 120, nanoUsd: 2_000 }, reserved: { tokens: 0, nanoUsd: 0 } })
        expect(yield* read(key, day(T0), T0 + 20)).toMatchObject({ used: { tokens: 120 }, reserved: { tokens: 0 } })
      }).pipe(Effect.provide(layer)))

    it.effect("a commit for an unknown or expired reservation still charges the actual usage", () =>
      Effect.gen(function* () {
        const key = uniqueKey("commit-unknown")
        const result = yield* commit(key, "nope", tokens(70), limitTokens(1000), day(T0), T0)
        expect(result.found).toBe(false)
        expect(result.snapshot.used.tokens).toBe(70)
      }).pipe(Effect.provide(layer)))

    it.effect("refund releases a reservation without charging; an unknown one changes nothing", () =>
      Effect.gen(function* () {
        const key = uniqueKey("refund")
        yield* reserve(key, "a", tokens(400), limitTokens(1000), day(T0), T0)
        const refunded = yield* refund(key, "a", day(T0), T0 + 1)
        expect(refunded.found).toBe(true)
        expect(refunded.snapshot).toMatchObject({ used: { tokens: 0 }, reserved: { tokens: 0 } })
        const again = yield* refund(key, "a", day(T0), T0 + 2)
        expect(again.found).toBe(false)
      }).pipe(Effect.provide(layer)))

    it.effect("a reservation's lease end charges its worst case (reserved becomes used), not before", () =>
      Effect.gen(function* () {
        const key = uniqueKey("lease")
        yield* reserve(key, "a", tokens(800), limitTokens(1000), day(T0), T0, 1000)
        expect((yield* read(key, day(T0), T0 + 999))).toMatchObject({ used: { tokens: 0 }, reserved: { tokens: 800 } })
        expect((yield* reserve(key, "b", tokens(800), limitTokens(1000), day(T0), T0 + 999))._tag).toBe("Rejected")
        // The caller may have spent it and lost only its commit: the lease end never gives the budget back.
        expect((yield* read(key, day(T0), T0 + 1000))).toMatchObject({ used: { tokens: 800 }, reserved: { tokens: 0 } })
        expect((yield* reserve(key, "c", tokens(800), limitTokens(1000), day(T0), T0 + 1000))._tag).toBe("Rejected")
        expect((yield* reserve(key, "d", tokens(200), limitTokens(1000), day(T0), T0 + 1000))._tag).toBe("Reserved")
      }).pipe(Effect.provide(layer)))

    it.effect("a commit after the lease end replaces the worst-case charge by the actual usage", () =>
      Effect.gen(function* () {
        const key = uniqueKey("late-commit")
        yield* reserve(key, "a", tokens(800), limitTokens(1000), day(T0), T0, 1000)
        expect((yield* read(key, day(T0), T0 + 1500)).used.tokens).toBe(800)
        const late = yield* commit(key, "a", tokens(120), limitTokens(1000), day(T0), T0 + 2000)
        expect(late.found).toBe(false)
        expect(late.snapshot).toMatchObject({ used: { tokens: 120 }, reserved: { tokens: 0 } })
        expect((yield* read(key, day(T0), T0 + 2001)).used.tokens).toBe(120)
      }).pipe(Effect.provide(layer)))

    it.effect("the same in a rolling window: the charge goes to the lease end's bucket and is corrected there", () =>
      Effect.gen(function* () {
        const key = uniqueKey("late-commit-rolling")
        yield* reserve(key, "a", tokens(500), limitTokens(1000), hourRolling, T0, 90_000)
        expect((yield* read(key, hourRolling, T0 + 100_000)).used.tokens).toBe(500)
        const late = yield* commit(key, "a", tokens(50), limitTokens(1000), hourRolling, T0 + 200_000)
        expect(late.snapshot.used.tokens).toBe(50)
        // the corrected charge belongs to the lease end's bucket (T0 + 90 s) and leaves the window with it
        expect((yield* read(key, hourRolling, T0 + 90_000 + 3_600_000 + 60_000)).used.tokens).toBe(0)
      }).pipe(Effect.provide(layer)))

    it.effect("a refund after the lease end takes the worst-case charge back", () =>
      Effect.gen(function* () {
        const key = uniqueKey("late-refund")
        yield* reserve(key, "a", tokens(600), limitTokens(1000), day(T0), T0, 1000)
        yield* reserve(key, "b", tokens(100), limitTokens(1000), day(T0), T0, 1000)
        expect((yield* read(key, day(T0), T0 + 1000)).used.tokens).toBe(700)
        yield* refund(key, "a", day(T0), T0 + 1001)
        expect((yield* read(key, day(T0), T0 + 1002))).toMatchObject({ used: { tokens: 100 }, reserved: { tokens: 0 } })
      }).pipe(Effect.provide(layer)))

    it.effect("a lease that ended in a past period is not carried into the next one", () =>
      Effect.gen(function* () {
        const key = uniqueKey("late-next-period")
        yield* reserve(key, "a", tokens(600), limitTokens(1000), day(T0), T0 + DAY - 2000, 1000)
        expect((yield* read(key, day(T0), T0 + DAY - 500)).used.tokens).toBe(600)
        // next day: the old period's charge is gone with it; a late commit is charged as new usage
        expect((yield* read(key, day(T0 + DAY), T0 + DAY + 10)).used.tokens).toBe(0)
        const late = yield* commit(key, "a", tokens(70), limitTokens(1000), day(T0 + DAY), T0 + DAY + 20)
        expect(late.snapshot.used.tokens).toBe(70)
      }).pipe(Effect.provide(layer)))

    it.effect("after its lease an id reserves anew and counts again; a late refund finds nothing", () =>
      Effect.gen(function* () {
        const key = uniqueKey("lease-reuse")
        yield* reserve(key, "a", tokens(300), limitTokens(1000), day(T0), T0, 1000)
        // within the lease, reserving the same id again holds it once (the lease is not extended)
        yield* reserve(key, "a", tokens(300), limitTokens(1000), day(T0), T0 + 500, 10_000)
        expect((yield* read(key, day(T0), T0 + 999)).reserved.tokens).toBe(300)
        expect((yield* read(key, day(T0), T0 + 1000)).reserved.tokens).toBe(0)
        expect((yield* refund(key, "a", day(T0), T0 + 1000)).found).toBe(false)
        const again = yield* reserve(key, "a", tokens(700), limitTokens(1000), day(T0), T0 + 1001)
        expect(again._tag).toBe("Reserved")
        expect(again.snapshot.reserved.tokens).toBe(700)
        expect((yield* refund(key, "a", day(T0), T0 + 1002)).found).toBe(true)
      }).pipe(Effect.provide(layer)))

    it.effect("a limit of zero refuses any positive amount; a zero amount always fits", () =>
      Effect.gen(function* () {
        const key = uniqueKey("zero")
        const refused = yield* reserve(key, "a", tokens(1), limitTokens(0), day(T0), T0)
        expect(refused).toMatchObject({ _tag: "Rejected", unit: "tokens", requested: 1, remaining: 0 })
        expect((yield* reserve(key, "b", tokens(0), limitTokens(0), day(T0), T0))._tag).toBe("Reserved")
        yield* commit(key, "c", tokens(50), limitTokens(10), day(T0), T0 + 1) // over-committed: remaining is 0, not negative
        const over = yield* reserve(key, "d", tokens(1), limitTokens(10), day(T0), T0 + 2)
        expect(over).toMatchObject({ _tag: "Rejected", remaining: 0 })
        expect(over.snapshot.used.tokens).toBe(50)
      }).pipe(Effect.provide(layer)))

    it.effect("a new calendar period starts from zero; reservations in flight carry over", () =>
      Effect.gen(function* () {
        const key = uniqueKey("calendar")
        yield* reserve(key, "a", tokens(100), limitTokens(1000), day(T0), T0)
        yield* commit(key, "a", tokens(90), limitTokens(1000), day(T0), T0 + 1)
        yield* reserve(key, "b", tokens(200), limitTokens(1000), day(T0), T0 + DAY - 1)
        const next = yield* read(key, day(T0 + DAY), T0 + DAY)
        expect(next).toMatchObject({
          used: { tokens: 0 },
          reserved: { tokens: 200 },
          periodStart: T0 + DAY,
          periodEnd: T0 + 2 * DAY
        })
        const committed = yield* commit(key, "b", tokens(150), limitTokens(1000), day(T0 + DAY), T0 + DAY + 5)
        expect(committed.snapshot).toMatchObject({ used: { tokens: 150 }, reserved: { tokens: 0 } })
      }).pipe(Effect.provide(layer)))

    it.effect("a caller with a lagging clock never resets a newer period", () =>
      Effect.gen(function* () {
        const key = uniqueKey("lagging")
        yield* commit(key, "a", tokens(300), limitTokens(1000), day(T0 + DAY), T0 + DAY)
        // Another replica still thinks it is yesterday: its commit lands in the current period.
        const late = yield* commit(key, "b", tokens(50), limitTokens(1000), day(T0), T0 + DAY - 10)
        expect(late.snapshot).toMatchObject({ used: { tokens: 350 }, periodStart: T0 + DAY })
        const rejected = yield* reserve(key, "c", tokens(651), limitTokens(1000), day(T0), T0 + DAY - 5)
        expect(rejected).toMatchObject({ _tag: "Rejected", remaining: 650 })
      }).pipe(Effect.provide(layer)))

    it.effect("a rolling window drops a bucket once its last instant is a full duration old", () =>
      Effect.gen(function* () {
        const key = uniqueKey("rolling")
        const t = T0 + 30_000 // inside the bucket [T0, T0 + 1 min)
        yield* commit(key, "a", tokens(400), limitTokens(1000), hourRolling, t)
        yield* commit(key, "b", tokens(100), limitTokens(1000), hourRolling, t + 20 * 60_000)
        expect((yield* read(key, hourRolling, T0 + 3_600_000 + 59_999)).used.tokens).toBe(500)
        const later = yield* read(key, hourRolling, T0 + 3_660_000)
        expect(later.used.tokens).toBe(100)
        expect(later.periodStart).toBe(T0 + 60_000)
        expect(later.periodEnd).toBe(T0 + 3_660_000)
        expect((yield* read(key, hourRolling, T0 + 20 * 60_000 + 3_660_000)).used.tokens).toBe(0)
      }).pipe(Effect.provide(layer)))

    it.effect("a rolling window admits against the usage still in the window", () =>
      Effect.gen(function* () {
        const key = uniqueKey("rolling-admit")
        yield* commit(key, "a", tokens(900), limitTokens(1000), hourRolling, T0)
        const refused = yield* reserve(key, "b", tokens(200), limitTokens(1000), hourRolling, T0 + 3_600_000)
        expect(refused).toMatchObject({ _tag: "Rejected", remaining: 100 })
        const admitted = yield* reserve(key, "c", tokens(200), limitTokens(1000), hourRolling, T0 + 3_660_000)
        expect(admitted._tag).toBe("Reserved")
      }).pipe(Effect.provide(layer)))

    it.effect("alert thresholds are reported once per period, in ascending order", () =>
      Effect.gen(function* () {
        const key = uniqueKey("alerts")
        const limits = limitTokens(1000)
        const alertAt = [1, 0.5, 0.8]
        const first = yield* commit(key, "a", tokens(400), limits, day(T0), T0, alertAt)
        expect(first.crossed).toEqual([])
        const second = yield* commit(key, "b", tokens(450), limits, day(T0), T0 + 1, alertAt)
        expect(second.crossed).toEqual([{ unit: "tokens", threshold: 0.5 }, { unit: "tokens", threshold: 0.8 }])
        const third = yield* commit(key, "c", tokens(100), limits, day(T0), T0 + 2, alertAt)
        expect(third.crossed).toEqual([])
        const fourth = yield* commit(key, "d", tokens(50), limits, day(T0), T0 + 3, alertAt)
        expect(fourth.crossed).toEqual([{ unit: "tokens", threshold: 1 }])
        const nextDay = yield* commit(key, "e", tokens(700), limits, day(T0 + DAY), T0 + DAY, alertAt)
        expect(nextDay.crossed).toEqual([{ unit: "tokens", threshold: 0.5 }])
      }).pipe(Effect.provide(layer)))

    it.effect("alerts are reported per unit, and exact thresholds are reached despite float noise", () =>
      Effect.gen(function* () {
        const key = uniqueKey("alerts-units")
        const limits: Limits = { tokens: 100, nanoUsd: 1_000_000 }
        const result = yield* commit(key, "a", { tokens: 70, nanoUsd: 700_000 }, limits, day(T0), T0, [0.7])
        expect(result.crossed).toEqual([{ unit: "tokens", threshold: 0.7 }, { unit: "usd", threshold: 0.7 }])
      }).pipe(Effect.provide(layer)))

    it.effect("in a rolling window a threshold re-arms once usage falls back below it", () =>
      Effect.gen(function* () {
        const key = uniqueKey("alerts-rolling")
        const limits = limitTokens(100)
        expect((yield* commit(key, "a", tokens(90), limits, hourRolling, T0, [0.8])).crossed).toHaveLength(1)
        expect((yield* commit(key, "b", tokens(5), limits, hourRolling, T0 + 1000, [0.8])).crossed).toHaveLength(0)
        const later = T0 + 2 * 3_600_000
        expect((yield* commit(key, "c", tokens(10), limits, hourRolling, later, [0.8])).crossed).toHaveLength(0)
        expect((yield* commit(key, "d", tokens(75), limits, hourRolling, later + 1, [0.8])).crossed).toHaveLength(1)
      }).pipe(Effect.provide(layer)))

    it.effect("in a rolling window a threshold fires again when one commit carries usage back over it after expiry", () =>
      Effect.gen(function* () {
        const key = uniqueKey("alerts-rolling-jump")
        const limits = limitTokens(100)
        expect((yield* commit(key, "a", tokens(90), limits, hourRolling, T0, [0.8])).crossed).toHaveLength(1)
        // Two hours later the 90 tokens have expired; a single commit of 85 crosses 80 % again.
        const again = yield* commit(key, "b", tokens(85), limits, hourRolling, T0 + 2 * 3_600_000, [0.8])
        expect(again.crossed).toEqual([{ unit: "tokens", threshold: 0.8 }])
        expect(again.snapshot.used.tokens).toBe(85)
      }).pipe(Effect.provide(layer)))

    it.effect("concurrent reservations are atomic: exactly as many as fit are admitted", () =>
      Effect.gen(function* () {
        const key = uniqueKey("atomic")
        const results = yield* Effect.forEach(
          Array.from({ length: 200 }, (_, i) => i),
          (i) => reserve(key, `r${i}`, tokens(7), limitTokens(1000), day(T0), T0),
          { concurrency: "unbounded" }
        )
        const admitted = results.filter((r) => r._tag === "Reserved").length
        expect(admitted).toBe(142)
        for (const r of results) {
          if (r._tag === "Rejected") expect(r.remaining).toBeLessThan(7)
        }
        expect((yield* read(key, day(T0), T0)).reserved.tokens).toBe(994)
      }).pipe(Effect.provide(layer)))

    it.effect("keys are independent", () =>
      Effect.gen(function* () {
        const a = uniqueKey("independent-a")
        const b = uniqueKey("independent-b")
        yield* reserve(a, "x", tokens(1000), limitTokens(1000), day(T0), T0)
        expect((yield* reserve(b, "x", tokens(1000), limitTokens(1000), day(T0), T0))._tag).toBe("Reserved")
        yield* refund(a, "x", day(T0), T0)
        expect((yield* read(b, day(T0), T0)).reserved.tokens).toBe(1000)
      }).pipe(Effect.provide(layer)))

    it.effect("large nano-USD sums stay exact", () =>
      Effect.gen(function* () {
        const key = uniqueKey("precision")
        const limits: Limits = { nanoUsd: 5_000_000_000_000 } // $5,000
        for (let i = 0; i < 10; i++) {
          yield* commit(key, `c${i}`, { tokens: 0, nanoUsd: 123_456_789_012 }, limits, day(T0), T0 + i)
        }
        expect((yield* read(key, day(T0), T0 + 20)).used.nanoUsd).toBe(1_234_567_890_120)
      }).pipe(Effect.provide(layer)))
  })
