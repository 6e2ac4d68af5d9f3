/**
 * The in-memory circuit-breaker store: one `Ref` over a bounded map from key to state. Each Effect method is one
 * atomic `Ref.modify` running a step of the pure state machine (`breaker.ts`); the same steps are offered
 * synchronously as the store's `sync` (part of the `Store` interface), which the breaker uses on its hot path.
 * A key back to its fresh state (closed, nothing counted) is forgotten; past `maxKeys` the least recently used one
 * goes (counted in `llm_state_evictions_total{store="circuit-breaker"}`).
 */
import { Effect, Ref } from "effect"
import type { Store, StoreSync } from "../CircuitBreaker.js"
import * as BoundedKeys from "./boundedKeys.js"
import * as Machine from "./breaker.js"

type States = BoundedKeys.BoundedKeys<Machine.State>

const save = (states: States, key: string, next: Machine.State): void => {
  if (Machine.isFresh(next)) states.release(key)
  else states.set(key, next)
}

// JavaScript runs one fiber at a time and `decide` is synchronous: read, decide and write cannot interleave.
const step = <E extends Machine.Event>(states: States, key: string, now: number, event: E): Machine.Result<E> => {
  const current = states.get(key) ?? Machine.initial
  const [result, next] = Machine.decide(current, now, event)
  if (next !== current) save(states, key, next)
  return result
}

const syncSteps = (states: States): StoreSync => ({
  isClosed: (key) => (states.peek(key) ?? Machine.initial).phase === "closed",
  admit: (key, now, config) => step(states, key, now, { _tag: "Admit", config }),
  record: (key, now, config, ticket, outcome) => step(states, key, now, { _tag: "Record", config, ticket, outcome }),
  recordIfQuiet: (key, now, config, ticket, outcome) => {
    const current = states.get(key) ?? Machine.initial
    const [transitions, next] = Machine.decide(current, now, { _tag: "Record", config, ticket, outcome })
    if (transitions.length > 0) return false
    if (next !== current) save(states, key, next)
    return true
  }
})

/** A memory store holding at most `maxKeys` live keys. */
export const makeStore = (maxKeys: number): Store => {
  const states: States = new BoundedKeys.BoundedKeys<Machine.State>("circuit-breaker", maxKeys)
  const ref = Ref.unsafeMake(states)
  const sync = syncSteps(states)
  const modify = <A>(f: (states: States) => A): Effect.Effect<A> => Ref.modify(ref, (s) => [f(s), s])
  return {
    admit: (key, now, config) => modify((s) => step(s, key, now, { _tag: "Admit", config })),
    record: (key, now, config, ticket, outcome) =>
      modify((s) => step(s, key, now, { _tag: "Record", config, ticket, outcome })),
    observe: (key, now, config) => modify((s) => step(s, key, now, { _tag: "Observe", config })),
    isolate: (key, now, config) => modify((s) => step(s, key, now, { _tag: "Isolate", config })),
    reset: (key, now, config) => modify((s) => step(s, key, now, { _tag: "Reset", config })),
    sync
  }
}
