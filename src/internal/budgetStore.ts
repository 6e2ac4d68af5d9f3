/**
 * TokenBudget's store: the Tag and the in-memory backend over the budget ledger's pure steps.
 */
import { Context, Effect } from "effect"
import { decode, type InvalidOptions } from "../InvalidOptions.js"
import * as BoundedKeys from "./boundedKeys.js"
import * as Ledger from "./budgetLedger.js"
import type { StoreService } from "./budgetLedger.js"

/** The store Tag (documented as `TokenBudget.TokenBudgetStore`). */
export class TokenBudgetStore extends Context.Tag("effect-llm-resilience/TokenBudgetStore")<
  TokenBudgetStore,
  StoreService
>() {}

const SWEEP_EVERY = 1024

/**
 * A memory store of at most `maxKeys` keys: every method runs the ledger's step synchronously on the key's state (so it
 * is atomic among fibers); a key back to the fresh state or past its period is dropped at once, the others are swept
 * every 1024 operations and bounded least recently used first. `repeatWindowMs` is the ledger's repeat window: 0
 * (none) for the memory store, whose steps are never delivered twice; the Redis store's window to compare the two.
 */
export const make = (maxKeys: number, repeatWindowMs: number = 0): StoreService => {
  const keys = new BoundedKeys.BoundedKeys<Ledger.KeyState>("token-budget", maxKeys)
  let operations = 0
  const run = <I extends { readonly key: string; readonly now: number }, A>(
    step: (state: Ledger.KeyState, input: I) => A
  ) =>
  (input: I): Effect.Effect<A> =>
    Effect.sync(() => {
      if (++operations % SWEEP_EVERY === 0) keys.sweep((state) => state.expiresAt <= input.now)
      let state = keys.get(input.key)
      if (state === undefined) {
        state = Ledger.emptyState()
        keys.set(input.key, state)
      }
      const result = step(state, input)
      if (state.expiresAt <= input.now || Ledger.isFresh(state)) keys.release(input.key)
      return result
    })
  return {
    reserve: run(Ledger.reserve),
    commit: run((state, input: Ledger.CommitInput) => Ledger.commit(state, input, repeatWindowMs)),
    refund: run(Ledger.refund),
    usage: run(Ledger.usage)
  }
}

/** A fresh memory store with the options of `TokenBudget.makeStoreMemoryWith`, or InvalidOptions. */
export const makeWith = (options: { readonly maxKeys?: number | undefined }): Effect.Effect<StoreService, InvalidOptions> =>
  Effect.flatMap(decode(BoundedKeys.StoreMemoryOptions, "TokenBudget.makeStoreMemoryWith", options), (valid) =>
    Effect.sync(() => make(valid.maxKeys ?? BoundedKeys.DEFAULT_MAX_KEYS)))

/** A fresh memory store with the default bound. */
export const makeDefault: Effect.Effect<StoreService> = Effect.sync(() => make(BoundedKeys.DEFAULT_MAX_KEYS))
