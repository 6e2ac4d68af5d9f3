/**
 * The contract every RouterStore backend meets: each method one atomic step on one deployment's key, `now` passed in
 * (the router's Effect clock). Keys are unique per run, so a shared backend needs no cleanup.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import * as Router from "../../src/Router.js"
import type { Admission, Outcome } from "../../src/internal/routerStore.js"

const T0 = 1_800_000_000_000 // a minute boundary

const open: Admission = { maxConcurrent: undefined, rpm: undefined, tpm: undefined, tokens: 0 }
const base: Omit<Outcome, "kind"> = { tokensDelta: 0, alpha: 0.5, staleBefore: 0, allowedFails: 3, defaultCooldownMs: 10_000 }

export const routerStoreContract = <E>(name: string, storeLayer: Layer.Layer<Router.RouterStore, E>) =>
  describe(`RouterStore contract: ${name}`, () => {
    const run = randomUUID()
    let n = 0
    const newKey = (label: string) => `router-contract:${run}:${label}:${++n}`
    const withStore = <A, E2>(f: (store: Router.Store) => Effect.Effect<A, E2>) =>
      Effect.flatMap(Router.RouterStore, f).pipe(Effect.provide(storeLayer))
    const read = (store: Router.Store, key: string, now: number) => Effect.map(store.read([key], now), (s) => s[0])

    it.effect("a key never seen reads as empty", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const state = yield* read(store, newKey("empty"), T0)
          expect([state.inFlight, state.cooldownUntil, state.samples, state.failures, state.requests, state.tokens]).toEqual(
            [0, 0, 0, 0, 0, 0]
          )
        })))

    it.effect("begin counts in flight, requests and tokens; settle frees the slot and corrects the tokens", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const key = newKey("begin")
          expect(yield* store.begin(key, { ...open, tokens: 100 }, T0)).toBe(true)
          expect(yield* store.begin(key, { ...open, tokens: 100 }, T0 + 1)).toBe(true)
          const during = yield* read(store, key, T0 + 2)
          expect([during.inFlight, during.requests, during.tokens]).toEqual([2, 2, 200])
          yield* store.settle(key, { ...base, kind: "success", tokensDelta: -70 }, T0 + 3)
          const after = yield* read(store, key, T0 + 4)
          expect([after.inFlight, after.requests, after.tokens]).toEqual([1, 2, 130])
        })))

    it.effect("begin refuses at maxConcurrent, rpm or tpm and changes nothing; the minute's window rolls over", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const key = newKey("limits")
          expect(yield* store.begin(key, { ...open, maxConcurrent: 1 }, T0)).toBe(true)
          expect(yield* store.begin(key, { ...open, maxConcurrent: 1 }, T0)).toBe(false)
          yield* store.settle(key, { ...base, kind: "neutral" }, T0)
          expect(yield* store.begin(key, { ...open, rpm: 2 }, T0)).toBe(true)
          expect(yield* store.begin(key, { ...open, rpm: 2 }, T0)).toBe(false)
          expect(yield* store.begin(key, { ...open, tpm: 50, tokens: 30 }, T0 + 59_000)).toBe(true)
          expect(yield* store.begin(key, { ...open, tpm: 50, tokens: 30 }, T0 + 59_999)).toBe(false)
          const full = yield* read(store, key, T0 + 59_999)
          expect([full.requests, full.tokens]).toEqual([3, 30])
          // a new minute: empty, so even a call larger than tpm is let in (else it could never run)
          expect(yield* store.begin(key, { ...open, rpm: 2, tpm: 50, tokens: 60 }, T0 + 60_000)).toBe(true)
          expect(yield* store.begin(key, { ...open, tpm: 50, tokens: 1 }, T0 + 60_001)).toBe(false)
        })))

    it.effect("latency: the first sample is taken as is, later ones weighted by alpha, a stale average replaced", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const key = newKey("latency")
          const sample = (ms: number, now: number, staleBefore = 0) =>
            Effect.zipRight(store.begin(key, open, now), store.settle(key, { ...base, kind: "success", latencyMs: ms, staleBefore }, now))
          yield* sample(100, T0)
          yield* sample(300, T0 + 1)
          expect((yield* read(store, key, T0 + 1)).latencyMs).toBe(200)
          yield* sample(40, T0 + 2, T0 + 2)
          const state = yield* read(store, key, T0 + 2)
          expect([state.latencyMs, state.samples, state.sampledAt]).toEqual([40, 1, T0 + 2])
        })))

    it.effect("failures: allowedFails in a row start the default cooldown; a success resets the count", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const key = newKey("fails")
          const fail = (now: number) => Effect.zipRight(store.begin(key, open, now), store.settle(key, { ...base, kind: "failure" }, now))
          const succeed = (now: number) => Effect.zipRight(store.begin(key, open, now), store.settle(key, { ...base, kind: "success" }, now))
          expect((yield* fail(T0)).cooledDownUntil).toBeUndefined()
          expect((yield* fail(T0)).cooledDownUntil).toBeUndefined()
          yield* succeed(T0)
          yield* fail(T0)
          yield* fail(T0)
          expect((yield* fail(T0 + 5)).cooledDownUntil).toBe(T0 + 5 + 10_000)
          const state = yield* read(store, key, T0 + 6)
          expect([state.failures, state.cooldownUntil, state.inFlight]).toEqual([0, T0 + 10_005, 0])
        })))

    it.effect("a forced cooldown starts at once and never shortens a longer one", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const key = newKey("forced")
          yield* store.begin(key, open, T0)
          expect((yield* store.settle(key, { ...base, kind: "failure", cooldownMs: 30_000 }, T0)).cooledDownUntil).toBe(T0 + 30_000)
          yield* store.begin(key, open, T0 + 1)
          expect((yield* store.settle(key, { ...base, kind: "failure", cooldownMs: 1_000 }, T0 + 1)).cooledDownUntil).toBe(
            T0 + 30_000
          )
        })))

    it.effect("quota view: headers less the other calls in flight, lowered only until the reset, whole after it; begin refuses what it cannot fit", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const key = newKey("quota")
          const q = { ...open, quota: true, tokens: 10 }
          const seen = (remaining: number) => ({
            quota: { requests: { limit: 10, remaining, resetAt: T0 + 30_000 }, tokens: undefined },
            estimate: 10
          })
          const remaining = (now: number) => Effect.map(read(store, key, now), (s) => s.quota?.requests?.remaining)
          expect(yield* store.begin(key, q, T0)).toBe(true)
          expect(yield* store.begin(key, q, T0)).toBe(true)
          expect(yield* remaining(T0)).toBeUndefined() // no headers seen yet
          expect(store.observe).toBeDefined()
          // the first call's headers: 3 left, and the second call (in flight) may not be counted yet
          yield* store.observe!(key, seen(3), T0 + 1)
          expect(yield* remaining(T0 + 1)).toBe(2)
          expect(yield* store.begin(key, q, T0 + 2)).toBe(true)
          expect(yield* store.begin(key, q, T0 + 2)).toBe(true)
          expect(yield* store.begin(key, q, T0 + 2)).toBe(false) // spent until the reset
          expect(yield* store.begin(key, { ...q, quota: false }, T0 + 2)).toBe(true) // unless told to ignore it
          expect(yield* remaining(T0 + 2)).toBe(-1)
          // an older, higher count coming back late does not raise it
          yield* store.settle(key, { ...base, kind: "success", seen: seen(6) }, T0 + 3)
          expect(yield* remaining(T0 + 3)).toBe(-1)
          // past the reset: whole again
          expect(yield* remaining(T0 + 30_000)).toBe(10)
          expect(yield* store.begin(key, q, T0 + 30_000)).toBe(true)
          expect(yield* remaining(T0 + 30_000)).toBe(9)
        })))

    it.effect("is atomic: 50 concurrent begins with maxConcurrent 10 admit exactly 10", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const key = newKey("atomic")
          const admitted = yield* Effect.all(
            Array.from({ length: 50 }, () => store.begin(key, { ...open, maxConcurrent: 10 }, T0)),
            { concurrency: "unbounded" }
          )
          expect(admitted.filter(Boolean)).toHaveLength(10)
          expect((yield* read(store, key, T0)).inFlight).toBe(10)
        })))

    it.effect("keys are independent", () =>
      withStore((store) =>
        Effect.gen(function* () {
          const a = newKey("a")
          const b = newKey("b")
          yield* store.begin(a, { ...open, maxConcurrent: 1 }, T0)
          expect(yield* store.begin(b, { ...open, maxConcurrent: 1 }, T0)).toBe(true)
          const states = yield* store.read([a, b, newKey("c")], T0)
          expect(states.map((s) => s.inFlight)).toEqual([1, 1, 0])
        })))
  })
