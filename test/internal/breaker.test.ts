import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import * as fc from "fast-check"
import {
  type Admission,
  type Config,
  decide,
  type Event,
  initial,
  type Outcome,
  type State,
  type Ticket,
  type Transition
} from "../../src/internal/breaker.js"
import { decodeOptions } from "../../src/internal/breakerOptions.js"

const base: Config = {
  failureThreshold: 3,
  failureRate: null,
  slowCall: null,
  window: null,
  minimumCalls: 10,
  halfOpenAfter: { initialMs: 1_000, maxMs: 1_000, factor: 1 },
  halfOpenProbes: 1,
  probeTimeoutMs: 60_000
}

/** A tiny driver over the pure function: keeps the state and collects the transitions. */
const machine = (config: Config, start: State = initial) => {
  let state = start
  const transitions: Array<Transition> = []
  const run = <E extends Event>(now: number, event: E) => {
    const [result, next] = decide(state, now, event)
    state = next
    return result
  }
  const admit = (now: number): Admission => {
    const admission = run(now, { _tag: "Admit", config })
    transitions.push(...admission.transitions)
    return admission
  }
  const ticket = (now: number): Ticket => {
    const admission = admit(now)
    if (admission._tag !== "Admitted") throw new Error(`expected admission at ${now}, got ${JSON.stringify(admission)}`)
    return admission.ticket
  }
  const record = (now: number, t: Ticket, outcome: Outcome) => {
    const result = run(now, { _tag: "Record", config, ticket: t, outcome })
    transitions.push(...result)
    return result
  }
  const call = (now: number, outcome: Outcome, duration = 0) => record(now + duration, ticket(now), outcome)
  const observe = (now: number) => {
    const result = run(now, { _tag: "Observe", config })
    transitions.push(...result.transitions)
    return result.status
  }
  return {
    admit,
    ticket,
    record,
    call,
    observe,
    isolate: (now: number) => transitions.push(...run(now, { _tag: "Isolate", config })),
    reset: (now: number) => transitions.push(...run(now, { _tag: "Reset", config })),
    get state() {
      return state
    },
    transitions
  }
}

const phases = (transitions: ReadonlyArray<Transition>) => transitions.map((t) => `${t.from}>${t.to}:${t.reason}`)

describe("decide: consecutive failures", () => {
  it("starts closed with no transition", () => {
    const m = machine(base)
    expect(m.observe(0).phase).toBe("closed")
    expect(m.transitions).toEqual([])
  })

  it("opens at exactly failureThreshold consecutive failures, not one before", () => {
    const m = machine(base)
    m.call(0, "failure")
    m.call(1, "failure")
    expect(m.observe(2).phase).toBe("closed")
    m.call(3, "failure")
    expect(m.observe(3)).toMatchObject({ phase: "open", retryAfterMs: 1_000 })
    expect(phases(m.transitions)).toEqual(["closed>open:consecutiveFailures"])
    expect(m.transitions[0]).toMatchObject({ at: 3, breakMs: 1_000 })
  })

  it("a success in between resets the consecutive count", () => {
    const m = machine(base)
    m.call(0, "failure")
    m.call(0, "failure")
    m.call(0, "success")
    m.call(0, "failure")
    m.call(0, "failure")
    expect(m.observe(0).phase).toBe("closed")
  })

  it("ignored outcomes neither count nor reset the count", () => {
    const m = machine(base)
    m.call(0, "failure")
    m.call(0, "failure")
    m.call(0, "ignored")
    m.call(0, "ignored")
    expect(m.observe(0)).toMatchObject({ phase: "closed", consecutiveFailures: 2 })
    m.call(0, "failure")
    expect(m.observe(0).phase).toBe("open")
  })
})

describe("decide: failure rate over a count window", () => {
  const config: Config = {
    ...base,
    failureThreshold: null,
    failureRate: 0.5,
    window: { kind: "calls", size: 4 },
    minimumCalls: 4
  }

  it("stays closed below minimumCalls even at 100 % failures", () => {
    const m = machine(config)
    for (let i = 0; i < 3; i++) m.call(i, "failure")
    expect(m.observe(10)).toMatchObject({ phase: "closed", calls: 3, failures: 3 })
  })

  it("opens exactly at the threshold (≥) and stays closed just below it", () => {
    const below = machine({ ...config, failureRate: 0.51 })
    const at = machine(config)
    for (const m of [below, at]) {
      m.call(0, "success")
      m.call(0, "success")
      m.call(0, "failure")
      m.call(0, "failure")
    }
    expect(below.observe(0).phase).toBe("closed")
    expect(at.observe(0).phase).toBe("open")
    expect(phases(at.transitions)).toEqual(["closed>open:failureRate"])
  })

  it("does not open when the minimum is reached by a success", () => {
    const m = machine(config)
    m.call(0, "failure")
    m.call(0, "failure")
    m.call(0, "failure")
    m.call(0, "success")
    expect(m.observe(0)).toMatchObject({ phase: "closed", calls: 4, failures: 3 })
    m.call(0, "failure") // evicts the first failure: 3 of 4 failed
    expect(m.observe(0).phase).toBe("open")
  })

  it("wraps around the ring: the oldest outcome is evicted", () => {
    const m = machine({ ...config, failureRate: 0.75 })
    m.call(0, "failure")
    m.call(0, "success")
    m.call(0, "success")
    m.call(0, "success")
    m.call(0, "success") // evicts the failure
    expect(m.observe(0)).toMatchObject({ calls: 4, failures: 0 })
    m.call(0, "failure")
    m.call(0, "failure")
    expect(m.observe(0)).toMatchObject({ phase: "closed", calls: 4, failures: 2 })
    m.call(0, "failure")
    expect(m.observe(0).phase).toBe("open")
  })
})

describe("decide: failure rate over a time window", () => {
  const config: Config = {
    ...base,
    failureThreshold: null,
    failureRate: 0.5,
    window: { kind: "time", durationMs: 10_000, buckets: 10 },
    minimumCalls: 2
  }

  it("sums failures in the same and in different sub-windows", () => {
    const same = machine(config)
    same.call(100, "failure")
    same.call(200, "failure")
    expect(same.observe(300).phase).toBe("open")
    const spread = machine(config)
    spread.call(999, "failure") // end of bucket 0
    spread.call(1_000, "failure") // start of bucket 1
    expect(spread.observe(1_000).phase).toBe("open")
  })

  it("an outcome expires exactly when its bucket leaves the window", () => {
    const m = machine({ ...config, minimumCalls: 3 })
    m.call(0, "failure")
    m.call(0, "failure")
    expect(m.observe(9_999)).toMatchObject({ calls: 2, failures: 2 })
    expect(m.observe(10_000)).toMatchObject({ calls: 0, failures: 0 })
    m.call(10_000, "failure")
    expect(m.observe(10_000).phase).toBe("closed")
  })

  it("just before the boundary the old outcomes still count", () => {
    const m = machine({ ...config, minimumCalls: 3 })
    m.call(0, "failure")
    m.call(0, "failure")
    m.call(9_999, "failure")
    expect(m.observe(9_999).phase).toBe("open")
  })

  it("a single bucket window (low sampling duration) works", () => {
    const m = machine({ ...config, window: { kind: "time", durationMs: 1_000, buckets: 1 } })
    m.call(0, "failure")
    m.call(999, "failure")
    expect(m.observe(999).phase).toBe("open")
    const n = machine({ ...config, window: { kind: "time", durationMs: 1_000, buckets: 1 } })
    n.call(999, "failure")
    n.call(1_000, "failure")
    expect(n.observe(1_000)).toMatchObject({ phase: "closed", calls: 1 })
  })

  it("buckets are reused after the window wraps around", () => {
    const m = machine({ ...config, minimumCalls: 3 })
    m.call(500, "failure")
    m.call(20_500, "success") // same slot, two windows later: the old bucket is replaced
    expect(m.observe(20_500)).toMatchObject({ calls: 1, failures: 0 })
  })
})

describe("decide: slow calls", () => {
  const config: Config = {
    ...base,
    failureThreshold: null,
    slowCall: { durationMs: 1_000, rateThreshold: 0.5 },
    window: { kind: "calls", size: 4 },
    minimumCalls: 2
  }

  it("opens on the slow-call rate even when every call succeeds", () => {
    const m = machine(config)
    m.call(0, "success", 999)
    m.call(0, "success", 1_000)
    expect(m.observe(1_500)).toMatchObject({ phase: "open", slowCalls: 0, retryAfterMs: 500 })
    expect(phases(m.transitions)).toEqual(["closed>open:slowCallRate"])
  })

  it("a fast sample stays closed", () => {
    const m = machine(config)
    m.call(0, "success", 999)
    m.call(0, "success", 999)
    m.call(0, "success", 1_000)
    expect(m.observe(5_000)).toMatchObject({ phase: "closed", slowCalls: 1 })
  })

  it("a slow probe reopens the circuit", () => {
    const m = machine(config)
    m.call(0, "success", 1_000)
    m.call(0, "success", 1_000)
    const probe = m.ticket(3_000)
    m.record(4_500, probe, "success")
    expect(m.observe(4_500).phase).toBe("open")
    expect(phases(m.transitions).at(-1)).toBe("halfOpen>open:probeSlow")
  })
})

describe("decide: open, half-open, closed", () => {
  const open = (config: Config = base) => {
    const m = machine(config)
    for (let i = 0; i < 3; i++) m.call(0, "failure")
    return m
  }

  it("rejects while open with the time left, and half-opens at exactly halfOpenAfter", () => {
    const m = open()
    expect(m.admit(400)).toMatchObject({ _tag: "Rejected", phase: "open", retryAfterMs: 600 })
    expect(m.admit(999)).toMatchObject({ _tag: "Rejected", retryAfterMs: 1 })
    const probe = m.admit(1_000)
    expect(probe).toMatchObject({ _tag: "Admitted", ticket: { probe: true } })
    expect(m.transitions.at(-1)).toMatchObject({ from: "open", to: "halfOpen", reason: "breakElapsed", at: 1_000 })
  })

  it("a break seen late still half-opens at openUntil", () => {
    const m = open()
    expect(m.observe(5_000).phase).toBe("halfOpen")
    expect(m.transitions.at(-1)).toMatchObject({ to: "halfOpen", at: 1_000 })
  })

  it("admits exactly halfOpenProbes probes, the others are rejected", () => {
    const m = open({ ...base, halfOpenProbes: 3 })
    const admissions = Array.from({ length: 50 }, () => m.admit(1_000))
    expect(admissions.filter((a) => a._tag === "Admitted")).toHaveLength(3)
    expect(admissions.filter((a) => a._tag === "Rejected")).toHaveLength(47)
  })

  it("all probes succeeding closes with fresh counts", () => {
    const m = open({ ...base, halfOpenProbes: 2 })
    const a = m.ticket(1_000)
    const b = m.ticket(1_000)
    m.record(1_010, a, "success")
    expect(m.observe(1_010).phase).toBe("halfOpen")
    m.record(1_020, b, "success")
    expect(m.observe(1_020)).toMatchObject({ phase: "closed", consecutiveFailures: 0, calls: 0 })
    expect(phases(m.transitions)).toEqual([
      "closed>open:consecutiveFailures",
      "open>halfOpen:breakElapsed",
      "halfOpen>closed:probesSucceeded"
    ])
  })

  it("a failed probe reopens; the backoff grows and resets on close", () => {
    const m = open({ ...base, halfOpenAfter: { initialMs: 1_000, maxMs: 5_000, factor: 2 } })
    m.record(1_000, m.ticket(1_000), "failure")
    expect(m.transitions.at(-1)).toMatchObject({ to: "open", reason: "probeFailed", breakMs: 2_000 })
    m.record(3_000, m.ticket(3_000), "failure")
    expect(m.transitions.at(-1)).toMatchObject({ breakMs: 4_000 })
    m.record(7_000, m.ticket(7_000), "failure")
    expect(m.transitions.at(-1)).toMatchObject({ breakMs: 5_000 }) // capped at max
    m.record(12_000, m.ticket(12_000), "success")
    expect(m.observe(12_000).phase).toBe("closed")
    for (let i = 0; i < 3; i++) m.call(12_000, "failure")
    expect(m.transitions.at(-1)).toMatchObject({ to: "open", breakMs: 1_000 })
  })

  it("an ignored probe (interrupted) frees its slot for the next caller", () => {
    const m = open()
    const probe = m.ticket(1_000)
    expect(m.admit(1_001)._tag).toBe("Rejected")
    m.record(1_002, probe, "ignored")
    expect(m.admit(1_003)).toMatchObject({ _tag: "Admitted", ticket: { probe: true } })
  })

  it("a probe never reported is written off after probeTimeout; its late outcome is ignored", () => {
    const m = open()
    const lost = m.ticket(1_000)
    expect(m.admit(60_999)._tag).toBe("Rejected")
    const replacement = m.ticket(61_000)
    m.record(61_001, lost, "failure")
    expect(m.observe(61_001).phase).toBe("halfOpen")
    m.record(61_002, replacement, "success")
    expect(m.observe(61_002).phase).toBe("closed")
  })

  it("outcomes of calls admitted before the break neither extend nor reopen it", () => {
    const m = machine(base)
    const late = Array.from({ length: 5 }, () => m.ticket(0))
    for (let i = 0; i < 3; i++) m.record(10, late[i], "failure")
    expect(m.observe(10)).toMatchObject({ phase: "open", retryAfterMs: 1_000 })
    m.record(500, late[3], "failure")
    expect(m.observe(500)).toMatchObject({ phase: "open", retryAfterMs: 510 })
    const probe = m.ticket(1_010)
    m.record(1_020, late[4], "failure") // started closed, arrives half-open: does not reopen
    expect(m.observe(1_020).phase).toBe("halfOpen")
    m.record(1_030, probe, "success")
    expect(m.observe(1_030).phase).toBe("closed")
    expect(m.transitions.filter((t) => t.to === "open")).toHaveLength(1)
  })
})

describe("decide: generations", () => {
  it("a call admitted in an earlier closed period does not count in the next one", () => {
    const m = machine(base)
    const old = [m.ticket(0), m.ticket(0), m.ticket(0)]
    for (let i = 0; i < 3; i++) m.call(0, "failure")
    m.record(1_000, m.ticket(1_000), "success") // probe closes
    m.call(1_000, "failure")
    m.call(1_000, "failure")
    for (const t of old) m.record(1_001, t, "failure")
    expect(m.observe(1_001)).toMatchObject({ phase: "closed", consecutiveFailures: 2 })
  })

  it("a probe ticket of an earlier half-open period is ignored", () => {
    const m = machine({ ...base, failureThreshold: 1 })
    m.call(0, "failure")
    const probe = m.ticket(1_000)
    m.reset(1_001)
    m.call(1_002, "failure")
    const next = m.ticket(2_002)
    m.record(2_003, probe, "success")
    expect(m.observe(2_003)).toMatchObject({ phase: "halfOpen" })
    m.record(2_004, next, "success")
    expect(m.observe(2_004).phase).toBe("closed")
  })
})

describe("decide: manual control", () => {
  it("isolate holds the circuit open whatever the time; reset closes it", () => {
    const m = machine(base)
    m.isolate(0)
    m.isolate(1) // already isolated: no second transition
    expect(m.admit(1_000_000)).toMatchObject({ _tag: "Rejected", phase: "isolated" })
    m.reset(1_000_001)
    expect(m.admit(1_000_002)).toMatchObject({ _tag: "Admitted", ticket: { probe: false } })
    expect(phases(m.transitions)).toEqual(["closed>isolated:isolated", "isolated>closed:reset"])
  })

  it("reset while closed clears the counts without a transition", () => {
    const m = machine(base)
    m.call(0, "failure")
    m.call(0, "failure")
    m.reset(1)
    m.call(2, "failure")
    expect(m.observe(2)).toMatchObject({ phase: "closed", consecutiveFailures: 1 })
    expect(m.transitions).toEqual([])
  })
})

describe("decide: serialization and invariants", () => {
  it("the state survives a JSON round trip in every phase", () => {
    const config: Config = {
      ...base,
      failureThreshold: null,
      failureRate: 0.5,
      window: { kind: "time", durationMs: 10_000, buckets: 5 },
      minimumCalls: 3
    }
    const m = machine(config)
    m.call(0, "failure")
    m.call(0, "success")
    const closed = JSON.parse(JSON.stringify(m.state)) as State
    expect(closed).toEqual(m.state)
    expect(machine(config, closed).call(0, "failure")).toHaveLength(1)
    m.call(0, "failure")
    const open = JSON.parse(JSON.stringify(m.state)) as State
    expect(machine(config, open).admit(500)).toMatchObject({ _tag: "Rejected", retryAfterMs: 500 })
    // An open state restored after its break half-opens at once: the first caller probes.
    expect(machine(config, open).admit(5_000)).toMatchObject({ _tag: "Admitted", ticket: { probe: true } })
  })

  const eventArb = fc.oneof(
    fc.record({ kind: fc.constant("admit" as const), dt: fc.integer({ min: 0, max: 700 }) }),
    fc.record({
      kind: fc.constant("record" as const),
      dt: fc.integer({ min: 0, max: 700 }),
      pick: fc.nat(),
      outcome: fc.constantFrom<Outcome>("success", "failure", "ignored")
    }),
    fc.record({ kind: fc.constant("reset" as const), dt: fc.constant(0) })
  )

  it("property: probes never exceed halfOpenProbes, and every open follows a closed or half-open", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 200 }), fc.integer({ min: 1, max: 3 }), (events, probes) => {
        const config: Config = {
          ...base,
          failureRate: 0.5,
          window: { kind: "calls", size: 5 },
          minimumCalls: 3,
          halfOpenProbes: probes
        }
        const m = machine(config)
        const tickets: Array<Ticket> = []
        let now = 0
        for (const e of events) {
          now += e.dt
          if (e.kind === "admit") {
            const a = m.admit(now)
            if (a._tag === "Admitted") tickets.push(a.ticket)
          } else if (e.kind === "record" && tickets.length > 0) {
            const [t] = tickets.splice(e.pick % tickets.length, 1)
            m.record(now, t, e.outcome)
          } else if (e.kind === "reset") {
            m.reset(now)
          }
          expect(m.state.probesAdmitted).toBeLessThanOrEqual(probes)
          expect(m.state.probeSuccesses).toBeLessThanOrEqual(m.state.probesAdmitted)
        }
        for (let i = 1; i < m.transitions.length; i++) {
          expect(m.transitions[i].from).toBe(m.transitions[i - 1].to)
        }
        for (const t of m.transitions) if (t.to === "open") expect(["closed", "halfOpen"]).toContain(t.from)
      }),
      { numRuns: 300 }
    )
  })

  it("property: window totals match a recount of the outcomes still in the window", () => {
    const outcomes = fc.array(
      fc.record({ dt: fc.integer({ min: 0, max: 3_000 }), failed: fc.boolean(), slow: fc.boolean() }),
      { maxLength: 120 }
    )
    // No rule set: the window only counts, so it is never reset by a transition.
    const counting = (window: Config["window"]): Config => ({ ...base, failureThreshold: null, window })
    fc.assert(
      fc.property(outcomes, fc.integer({ min: 1, max: 12 }), (events, size) => {
        const m = machine({ ...counting({ kind: "calls", size }), slowCall: null })
        const slowConfig = { durationMs: 1, rateThreshold: 1 }
        const s = machine({ ...counting({ kind: "calls", size }), slowCall: slowConfig, minimumCalls: Infinity })
        let now = 0
        const seen: Array<{ failed: boolean; slow: boolean }> = []
        for (const e of events) {
          now += e.dt
          m.call(now, e.failed ? "failure" : "success")
          s.call(now, e.failed ? "failure" : "success", e.slow ? 1 : 0)
          seen.push(e)
          const last = seen.slice(-size)
          expect(m.observe(now)).toMatchObject({
            calls: last.length,
            failures: last.filter((o) => o.failed).length
          })
          expect(s.observe(now)).toMatchObject({ calls: last.length, slowCalls: last.filter((o) => o.slow).length })
        }
      }),
      { numRuns: 200 }
    )
    fc.assert(
      fc.property(outcomes, fc.integer({ min: 1, max: 10 }), fc.integer({ min: 1, max: 10_000 }), (events, buckets, durationMs) => {
        const m = machine(counting({ kind: "time", durationMs, buckets }))
        const width = durationMs / buckets
        let now = 0
        const seen: Array<{ at: number; failed: boolean }> = []
        for (const e of events) {
          now += e.dt
          m.call(now, e.failed ? "failure" : "success")
          seen.push({ at: now, failed: e.failed })
          const inWindow = seen.filter((o) => Math.floor(now / width) - Math.floor(o.at / width) < buckets)
          expect(m.observe(now)).toMatchObject({
            calls: inWindow.length,
            failures: inWindow.filter((o) => o.failed).length
          })
        }
      }),
      { numRuns: 200 }
    )
  })

  it("property: the backoff stays within [initial, max] and never NaN", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.double({ min: 1, max: 10, noNaN: true }),
        fc.integer({ min: 0, max: 5_000 }),
        (initialMs, extra, factor, breaks) => {
          const maxMs = initialMs + extra
          const config: Config = { ...base, halfOpenAfter: { initialMs, maxMs, factor } }
          const state: State = { ...initial, phase: "isolated", breaks }
          const [admission] = decide(state, 0, { _tag: "Admit", config })
          const ms = admission._tag === "Rejected" ? admission.retryAfterMs : NaN
          expect(ms).toBeGreaterThanOrEqual(initialMs)
          expect(ms).toBeLessThanOrEqual(maxMs)
        }
      )
    )
  })
})

describe("options", () => {
  const issues = (input: unknown) =>
    Either.match(decodeOptions("CircuitBreaker", input), {
      onLeft: (e) => e.issues.map((i) => i.path),
      onRight: () => []
    })

  it("defaults: 5 consecutive failures, 30 s break, 1 probe, 5 min probe timeout", () => {
    const decoded = Either.getOrThrow(decodeOptions("CircuitBreaker", {}))
    expect(decoded.config).toEqual({
      failureThreshold: 5,
      failureRate: null,
      slowCall: null,
      window: null,
      minimumCalls: 10,
      halfOpenAfter: { initialMs: 30_000, maxMs: 30_000, factor: 1 },
      halfOpenProbes: 1,
      probeTimeoutMs: 300_000
    })
  })

  it("failureRate alone turns the consecutive rule off and uses a one-minute window", () => {
    const decoded = Either.getOrThrow(decodeOptions("CircuitBreaker", { failureRate: { threshold: 0.5 } }))
    expect(decoded.config).toMatchObject({
      failureThreshold: null,
      failureRate: 0.5,
      window: { kind: "time", durationMs: 60_000, buckets: 10 },
      minimumCalls: 10
    })
    const small = Either.getOrThrow(decodeOptions("CircuitBreaker", { failureRate: { threshold: 1, window: { calls: 4 } } }))
    expect(small.config.minimumCalls).toBe(4)
  })

  it("lists every failing path", () => {
    expect(issues({
      failureThreshold: 0,
      failureRate: { threshold: 1.5, minimumCalls: 0, window: { calls: 0 } },
      halfOpenAfter: "-1 seconds",
      halfOpenProbes: 0,
      probeTimeout: "soon",
      countAsFailure: "yes",
      per: "region"
    }).sort()).toEqual([
      "countAsFailure",
      "failureRate.minimumCalls",
      "failureRate.threshold",
      "failureRate.window.calls",
      "failureThreshold",
      "halfOpenAfter",
      "halfOpenProbes",
      "per",
      "probeTimeout"
    ].sort())
  })

  it("reports misspelt or misplaced option names instead of ignoring them", () => {
    expect(issues({ failureTreshold: 3, halfOpenAfter: "1 second" })).toEqual(["failureTreshold"])
    expect(issues({
      failureRate: { threshold: 0.5, minCalls: 5, window: { call: 10 } },
      slowCall: { duration: "1 second", rateThreshold: 0.5, treshold: 1 },
      halfOpenAfter: { initial: "1 second", max: "10 seconds", factr: 3 }
    }).sort()).toEqual([
      "failureRate.minCalls",
      "failureRate.window.call",
      "halfOpenAfter.factr",
      "slowCall.treshold"
    ])
    // `make` takes a key, `policy` a per: the other one is a mistake.
    const pathsFor = (kind: "make" | "policy", input: unknown) =>
      Either.match(decodeOptions("CircuitBreaker", input, kind), { onLeft: (e) => e.issues.map((i) => i.path), onRight: () => [] })
    expect(pathsFor("make", { key: "k", per: "provider" })).toEqual(["per"])
    expect(pathsFor("policy", { key: "k", per: "provider" })).toEqual(["key"])
    expect(pathsFor("policy", { per: "provider", failureThreshold: undefined })).toEqual([])
  })

  it("bounds the window sizes", () => {
    expect(issues({ failureRate: { threshold: 0.5, window: { calls: 10_001 } } })).toEqual(["failureRate.window.calls"])
    expect(issues({ failureRate: { threshold: 0.5, window: { duration: "1 hour", buckets: 1_001 } } })).toEqual([
      "failureRate.window.buckets"
    ])
    expect(issues({ failureRate: { threshold: 0.5, window: { calls: 10_000 } } })).toEqual([])
  })

  it("rejects impossible combinations", () => {
    expect(issues({ failureRate: { threshold: 0.5, minimumCalls: 20, window: { calls: 10 } } })).toEqual([
      "failureRate.minimumCalls"
    ])
    expect(issues({ failureRate: { threshold: 0, window: { calls: 5, duration: "1 second" } } }).sort()).toEqual([
      "failureRate.threshold",
      "failureRate.window"
    ])
    expect(issues({ halfOpenAfter: { initial: "10 seconds", max: "1 second", factor: 0.5 } }).sort()).toEqual([
      "halfOpenAfter.factor"
    ])
    expect(issues({ halfOpenAfter: { initial: "10 seconds", max: "1 second" } })).toEqual(["halfOpenAfter.max"])
    expect(issues({ halfOpenAfter: 0 })).toEqual(["halfOpenAfter"])
    expect(issues({ halfOpenAfter: Infinity })).toEqual(["halfOpenAfter"])
    expect(issues({ slowCall: { duration: "1 second", rateThreshold: 0.5, window: { calls: 1 } }, failureRate: { threshold: 0.5 } }))
      .toEqual(["slowCall.window"])
    expect(issues({ slowCall: { duration: 0, rateThreshold: 2 } }).sort()).toEqual(["slowCall.duration", "slowCall.rateThreshold"])
  })
})
