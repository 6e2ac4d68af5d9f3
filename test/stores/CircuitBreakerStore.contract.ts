/**
 * The contract every CircuitBreakerStore backend must meet. Call `circuitBreakerStoreContract(name, layer)` from a
 * test file with the backend's layer; keys are unique per run, so a shared backend (Redis) needs no cleanup.
 * Time is passed in explicitly, as the breaker does from the Effect clock.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Effect, type Layer } from "effect"
import { randomUUID } from "node:crypto"
import * as CircuitBreaker from "../../src/CircuitBreaker.js"

export const T0 = 1_700_000_000_000

export const config: CircuitBreaker.Config = {
  failureThreshold: 3,
  failureRate: null,
  slowCall: null,
  window: null,
  minimumCalls: 10,
  halfOpenAfter: { initialMs: 10_000, maxMs: 40_000, factor: 2 },
  halfOpenProbes: 1,
  probeTimeoutMs: 60_000
}

const rateConfig: CircuitBreaker.Config = {
  ...config,
  failureThreshold: null,
  failureRate: 0.5,
  slowCall: { durationMs: 5_000, rateThreshold: 0.75 },
  window: { kind: "time", durationMs: 60_000, buckets: 6 },
  minimumCalls: 4
}

const ticketOf = (admission: CircuitBreaker.Admission): CircuitBreaker.Ticket => {
  if (admission._tag !== "Admitted") throw new Error(`expected an admission, got ${JSON.stringify(admission)}`)
  return admission.ticket
}

const describeTransitions = (ts: ReadonlyArray<CircuitBreaker.TransitionRecord>) =>
  ts.map((t) => `${t.from}>${t.to}:${t.reason}`)

export const circuitBreakerStoreContract = <E>(name: string, storeLayer: Layer.Layer<CircuitBreaker.CircuitBreakerStore, E>) =>
  describe(`CircuitBreakerStore contract: ${name}`, () => {
    layer(storeLayer)((it) => {
      const run = randomUUID()
      let n = 0
      const newKey = () => `cb-contract:${run}:${++n}`

      const openKey = (store: CircuitBreaker.Store, key: string, at = T0) =>
        Effect.gen(function* () {
          for (let i = 0; i < 3; i++) {
            const ticket = ticketOf(yield* store.admit(key, at, config))
            yield* store.record(key, at, config, ticket, "failure")
          }
        })

      it.effect("a new key is closed and admits a normal call", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          const observed = yield* store.observe(key, T0, config)
          expect(observed.status).toMatchObject({ phase: "closed", retryAfterMs: 0, calls: 0, consecutiveFailures: 0 })
          expect(observed.transitions).toEqual([])
          const admission = yield* store.admit(key, T0, config)
          expect(admission).toMatchObject({ _tag: "Admitted", ticket: { probe: false, startedAt: T0 }, transitions: [] })
        }))

      it.effect("opens at the threshold, returning the transition once, and rejects with the time left", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          const results: Array<CircuitBreaker.TransitionRecord> = []
          for (let i = 0; i < 3; i++) {
            const ticket = ticketOf(yield* store.admit(key, T0, config))
            results.push(...(yield* store.record(key, T0 + i, config, ticket, "failure")))
          }
          expect(describeTransitions(results)).toEqual(["closed>open:consecutiveFailures"])
          expect(results[0]).toMatchObject({ at: T0 + 2, breakMs: 10_000 })
          expect(yield* store.admit(key, T0 + 2_002, config)).toMatchObject({
            _tag: "Rejected",
            phase: "open",
            retryAfterMs: 8_000
          })
        }))

      it.effect("admission is atomic: 50 concurrent callers after the break get exactly halfOpenProbes probes", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          const two = { ...config, halfOpenProbes: 2 }
          yield* openKey(store, key)
          const admissions = yield* Effect.all(
            Array.from({ length: 50 }, () => store.admit(key, T0 + 10_000, two)),
            { concurrency: "unbounded" }
          )
          expect(admissions.filter((a) => a._tag === "Admitted" && a.ticket.probe)).toHaveLength(2)
          expect(admissions.filter((a) => a._tag === "Rejected")).toHaveLength(48)
          const halfOpened = admissions.flatMap((a) => a.transitions)
          expect(describeTransitions(halfOpened)).toEqual(["open>halfOpen:breakElapsed"])
        }))

      it.effect("recording is atomic: 50 concurrent failures open it exactly once", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          const tickets = yield* Effect.all(Array.from({ length: 50 }, () => store.admit(key, T0, config)))
          const transitions = yield* Effect.all(
            tickets.map((a) => store.record(key, T0 + 1, config, ticketOf(a), "failure")),
            { concurrency: "unbounded" }
          )
          expect(describeTransitions(transitions.flat())).toEqual(["closed>open:consecutiveFailures"])
          expect((yield* store.observe(key, T0 + 1, config)).status).toMatchObject({ phase: "open", retryAfterMs: 10_000 })
        }))

      it.effect("a probe success closes with fresh counts; a probe failure reopens with the backoff", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          yield* openKey(store, key)
          const probe = ticketOf(yield* store.admit(key, T0 + 10_000, config))
          expect(probe.probe).toBe(true)
          const reopened = yield* store.record(key, T0 + 10_001, config, probe, "failure")
          expect(reopened).toMatchObject([{ from: "halfOpen", to: "open", reason: "probeFailed", breakMs: 20_000 }])
          const second = ticketOf(yield* store.admit(key, T0 + 30_001, config))
          const closed = yield* store.record(key, T0 + 30_002, config, second, "success")
          expect(describeTransitions(closed)).toEqual(["halfOpen>closed:probesSucceeded"])
          expect((yield* store.observe(key, T0 + 30_002, config)).status).toMatchObject({
            phase: "closed",
            consecutiveFailures: 0
          })
        }))

      it.effect("an ignored probe frees its slot; a lost probe is written off after probeTimeout", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          yield* openKey(store, key)
          const probe = ticketOf(yield* store.admit(key, T0 + 10_000, config))
          expect((yield* store.admit(key, T0 + 10_001, config))._tag).toBe("Rejected")
          yield* store.record(key, T0 + 10_002, config, probe, "ignored")
          const lost = ticketOf(yield* store.admit(key, T0 + 10_003, config))
          expect((yield* store.admit(key, T0 + 70_002, config))._tag).toBe("Rejected")
          const replacement = ticketOf(yield* store.admit(key, T0 + 70_003, config))
          expect(yield* store.record(key, T0 + 70_004, config, lost, "failure")).toEqual([])
          expect(describeTransitions(yield* store.record(key, T0 + 70_005, config, replacement, "success"))).toEqual([
            "halfOpen>closed:probesSucceeded"
          ])
        }))

      it.effect("outcomes of an older generation are ignored", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          const old = ticketOf(yield* store.admit(key, T0, config))
          yield* openKey(store, key)
          expect(yield* store.record(key, T0 + 5_000, config, old, "failure")).toEqual([])
          expect((yield* store.observe(key, T0 + 5_000, config)).status.retryAfterMs).toBe(5_000)
        }))

      it.effect("time alone half-opens it, reported once", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          yield* openKey(store, key)
          const first = yield* store.observe(key, T0 + 10_500, config)
          const second = yield* store.observe(key, T0 + 10_600, config)
          expect(first.status.phase).toBe("halfOpen")
          expect(first.transitions).toMatchObject([{ from: "open", to: "halfOpen", at: T0 + 10_000 }])
          expect(second.transitions).toEqual([])
        }))

      it.effect("isolate holds it open until reset; each is reported once", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          expect(describeTransitions(yield* store.isolate(key, T0, config))).toEqual(["closed>isolated:isolated"])
          expect(yield* store.isolate(key, T0 + 1, config)).toEqual([])
          expect(yield* store.admit(key, T0 + 3_600_000, config)).toMatchObject({ _tag: "Rejected", phase: "isolated" })
          expect(describeTransitions(yield* store.reset(key, T0 + 3_600_001, config))).toEqual(["isolated>closed:reset"])
          expect((yield* store.admit(key, T0 + 3_600_002, config))._tag).toBe("Admitted")
        }))

      it.effect("keys are independent", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const a = newKey()
          const b = newKey()
          yield* openKey(store, a)
          expect((yield* store.admit(a, T0 + 1, config))._tag).toBe("Rejected")
          expect((yield* store.admit(b, T0 + 1, config))._tag).toBe("Admitted")
        }))

      it.effect("keeps the time window and the slow-call rule of the config it is given", () =>
        Effect.gen(function* () {
          const store = yield* CircuitBreaker.CircuitBreakerStore
          const key = newKey()
          const call = (at: number, outcome: CircuitBreaker.Outcome, duration = 0) =>
            Effect.flatMap(store.admit(key, at, rateConfig), (a) =>
              store.record(key, at + duration, rateConfig, ticketOf(a), outcome))
          yield* call(T0, "failure")
          yield* call(T0, "failure")
          yield* call(T0 + 59_000, "success")
          expect((yield* store.observe(key, T0 + 59_000, rateConfig)).status).toMatchObject({ calls: 3, failures: 2 })
          // T0 is the start of a 10 s bucket: its outcomes leave the window exactly at T0 + 60 s.
          expect((yield* store.observe(key, T0 + 60_000, rateConfig)).status).toMatchObject({ calls: 1, failures: 0 })
          yield* call(T0 + 60_000, "success", 5_000)
          yield* call(T0 + 60_000, "success", 5_000)
          const opened = yield* call(T0 + 60_000, "success", 5_000)
          expect(describeTransitions(opened)).toEqual(["closed>open:slowCallRate"])
        }))
    })
  })
