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

  it("keeps the sum and lease bounds of open reservations exact without walking them, leases of any length", () =>
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ _tag: fc.constant("reserve" as const), amount: fc.integer({ min: 0, max: 50 }), lease: fc.integer({ min: 1, max: 40 * 60_000 }) }),
            fc.record({ _tag: fc.constant("settle" as const), pick: fc.nat(), refund: fc.boolean() }),
            fc.record({ _tag: fc.constant("wait" as const), ms: fc.integer({ min: 0, max: 15 * 60_000 }) })
          ),
          { maxLength: 150 }
        ),
        fc.constantFrom(...periods),
        (ops, period) => {
          const state = Ledger.emptyState()
          const ids: Array<string> = []
          let now = Date.UTC(2025, 0, 1)
          let next = 0
          for (const o of ops) {
            const window = windowAt(period, now)
            if (o._tag === "wait") now += o.ms
            else if (o._tag === "reserve") {
              const id = `r${next++}`
              ids.push(id)
              Ledger.reserve(state, {
                key: "k",
                reservationId: id,
                amount: { tokens: o.amount, nanoUsd: o.amount * 3 },
                limits: { tokens: 1e9 },
                window,
                now,
                expiresAt: now + o.lease
              })
            } else if (ids.length > 0) {
              const [id] = ids.splice(o.pick % ids.length, 1)
              if (o.refund) Ledger.refund(state, { key: "k", reservationId: id, window, now })
              else {
                Ledger.commit(state, {
                  key: "k",
                  reservationId: id,
                  actual: { tokens: 1, nanoUsd: 1 },
                  limits: { tokens: 1e9 },
                  alertAt: [1, 0.5],
                  window,
                  now
                })
              }
            }
            const open = [...(state.reservations?.values() ?? [])]
            // every step converts the leases that ended: none is left open past its end
            for (const r of open) expect(r.expiresAt).toBeGreaterThan(o._tag === "wait" ? now - o.ms : now)
            expect(state.reserved).toEqual({
              tokens: open.reduce((sum, r) => sum + r.amount.tokens, 0),
              nanoUsd: open.reduce((sum, r) => sum + r.amount.nanoUsd, 0)
            })
            expect(state.leaseMax).toBe(Math.max(Number.NEGATIVE_INFINITY, ...open.map((r) => r.expiresAt)))
            expect(state.leaseMin).toBeLessThanOrEqual(Math.min(Number.POSITIVE_INFINITY, ...open.map((r) => r.expiresAt)))
            const usage = Ledger.usage(state, { key: "k", window: windowAt(period, now), now })
            const live = [...(state.reservations?.values() ?? [])]
            expect(usage.reserved.tokens).toBe(live.reduce((sum, r) => sum + r.amount.tokens, 0))
            for (const r of live) expect(r.expiresAt).toBeGreaterThan(now)
          }
        }
      ),
      { numRuns: 300 }
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
