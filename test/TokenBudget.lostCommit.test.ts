import { describe, expect, it } from "@effect/vitest"
import { Effect, Ref, TestClock } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as TokenBudget from "../src/TokenBudget.js"
import * as Tokenizer from "../src/Tokenizer.js"

const request = (i: number) =>
  new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `ticket ${i}` }], maxTokens: 100 })

/** A memory store whose commits fail (as a store failure does: a defect) while `down` is set. */
const flakyStore = Effect.gen(function* () {
  const inner = yield* TokenBudget.makeStoreMemory
  const down = yield* Ref.make(false)
  const failedCommits = yield* Ref.make(0)
  const store = TokenBudget.TokenBudgetStore.of({
    ...inner,
    commit: (input) =>
      Effect.flatMap(Ref.get(down), (isDown) =>
        isDown
          ? Effect.zipRight(Ref.update(failedCommits, (n) => n + 1), Effect.dieMessage("store unreachable"))
          : inner.commit(input))
  })
  return { store, down, failedCommits }
})

const setup = Effect.gen(function* () {
  const flaky = yield* flakyStore
  const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 1_000_000 }, period: "day" }).pipe(
    Effect.provideService(TokenBudget.TokenBudgetStore, flaky.store),
    Effect.provide(Tokenizer.layerApproximate)
  )
  const fake = yield* FakeLlm.make(FakeLlm.reply("ok", { usage: { inputTokens: 10, outputTokens: 15 } }))
  return { ...flaky, budget, client: LlmClient.decorate(fake.client, budget) }
})

// Before lost commits were retried and leases charged, each of these left the ledger below the real usage.
describe("TokenBudget: a commit the store loses", () => {
  it.effect("is retried with backoff on the Effect clock and lands: the ledger holds exactly the real usage", () =>
    Effect.gen(function* () {
      const { budget, client, down, failedCommits } = yield* setup
      yield* Ref.set(down, true)
      yield* Effect.forEach([1, 2, 3], (i) => client.complete(request(i)))
      expect(yield* Ref.get(failedCommits)).toBe(3)
      expect((yield* budget.usage()).used).toBe(0)
      // the store comes back before the retries run out
      yield* TestClock.adjust("300 millis")
      yield* Ref.set(down, false)
      yield* TestClock.adjust("5 seconds")
      expect(yield* budget.usage()).toMatchObject({ used: 3 * 25, reserved: 0 })
    }))

  it.effect("still failing after the retries: the lease end charges the worst case, never zero", () =>
    Effect.gen(function* () {
      const { budget, client, down } = yield* setup
      yield* Ref.set(down, true)
      yield* Effect.forEach([1, 2, 3], (i) => client.complete(request(i)))
      const reserved = (yield* budget.usage()).reserved
      yield* TestClock.adjust("1 minute")
      expect(yield* budget.usage()).toMatchObject({ used: 0, reserved })
      yield* Ref.set(down, false)
      yield* TestClock.adjust("10 minutes")
      const after = yield* budget.usage()
      // ≥ the real usage, ≤ the sum of the reservations
      expect(after.reserved).toBe(0)
      expect(after.used).toBe(reserved)
      expect(after.used).toBeGreaterThanOrEqual(3 * 25)
    }))

  it.effect("a call that succeeds while the store is down is not held up by the retries", () =>
    Effect.gen(function* () {
      const { client, down } = yield* setup
      yield* Ref.set(down, true)
      // no clock adjustment: the call returns although the retries wait on the clock
      const response = yield* client.complete(request(1))
      expect(response.content).toBe("ok")
    }))
}, 10_000)

