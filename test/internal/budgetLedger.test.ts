import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Ledger from "../../src/internal/budgetLedger.js"
import { type Period, windowAt } from "../../src/internal/budgetPeriod.js"

type Op =
  | { readonly _tag: "reserve"; readonly amount: number }
  | { readonly _tag: "commit"; readonly pick: number; readonly fraction: number }
  | { readonly _tag: "refund"; readonly pick: number }
  | { readonly _tag: "wait"; readonly ms: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("reserve" as const), amount: fc.integer({ min: 0, max: 400 }) }),
  fc.record({ _tag: fc.constant("commit" as const), pick: fc.nat(), fraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ _tag: fc.constant("refund" as const), pick: fc.nat() }),
  fc.record({ _tag: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 20 * 60_000 }) })
)

const periods: ReadonlyArray<Period> = [
  { _tag: "Calendar", unit: "hour" },
  { _tag: "Rolling", durationMs: 30 * 60_000, buckets: 10 }
]

describe("budgetLedger", () => {
  it("used + reserved never exceeds the limit, and every rejection lacked room, whatever the interleaving", () =>
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), fc.constantFrom(...periods), (ops, period) => {
        const limit = 1000
        const state = Ledger.emptyState()
        const held = new Map<string, number>()
        let now = Date.UTC(2025, 0, 1)
        let next = 0
        const check = (snapshot: Ledger.Snapshot) =>
          expect(snapshot.used.tokens + snapshot.reserved.tokens).toBeLessThanOrEqual(limit)
        for (const o of ops) {
          const window = windowAt(period, now)
          const ids = [...held.keys()]
          if (o._tag === "wait") {
            now += o.ms
          } else if (o._tag === "reserve") {
            const id = `r${next++}`
            const before = Ledger.usage(state, { key: "k", window, now })
            const result = Ledger.reserve(state, {
              key: "k",
              reservationId: id,
              amount: { tokens: o.amount, nanoUsd: 0 },
              limits: { tokens: limit },
              window,
              now,
              expiresAt: now + 3_600_000
            })
            if (result._tag === "Reserved") held.set(id, o.amount)
            else {
              expect(result.requested).toBeGreaterThan(result.remaining)
              expect(result.remaining).toBe(limit - before.used.tokens - before.reserved.tokens)
            }
            check(result.snapshot)
          } else if (ids.length > 0) {
            const id = ids[o.pick % ids.length]
            const amount = held.get(id)!
            held.delete(id)
            const result = o._tag === "commit"
              ? Ledger.commit(state, {
                key: "k",
                reservationId: id,
                actual: { tokens: Math.floor(amount * o.fraction), nanoUsd: 0 },
                limits: { tokens: limit },
                alertAt: [0.5, 1],
                window,
                now
              })
              : Ledger.refund(state, { key: "k", reservationId: id, window, now })
            check(result.snapshot)
          }
        }
      }),
      { numRuns: 500 }
    ))

  it("forgets a key's state only after its period, buckets and leases are over", () => {
    const state = Ledger.emptyState()
    const window = windowAt({ _tag: "Calendar", unit: "day" }, 0)
    Ledger.reserve(state, {
      key: "k",
      reservationId: "a",
      amount: { tokens: 1, nanoUsd: 0 },
      limits: { tokens: 10 },
      window,
      now: 0,
      expiresAt: 2 * 86_400_000
    })
    expect(state.expiresAt).toBe(2 * 86_400_000)
    Ledger.refund(state, { key: "k", reservationId: "a", window, now: 1 })
    expect(state.expiresAt).toBe(86_400_000)
  })
})
