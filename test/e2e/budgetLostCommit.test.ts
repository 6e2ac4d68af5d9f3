import { expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Layer, Logger, LogLevel } from "effect"
import * as FakeLlm from "../../src/FakeLlm.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as Redis from "../../src/Redis.js"
import * as TokenBudget from "../../src/TokenBudget.js"
import * as Tokenizer from "../../src/Tokenizer.js"
import { describeOwnRedis, type OwnRedis, ownRedis } from "../support/ownRedis.js"

const CALLS = 12
const USED_PER_CALL = 25

const request = (i: number) =>
  new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `ticket ${i}` }], maxTokens: 100 })

// Real time on loopback: a Redis of the test's own is stopped (or frozen with SIGSTOP) while the calls' commits are on
// their way, then started again (resumed). Before lost commits were retried (and leases charged), the ledger ended below the real usage.
describeOwnRedis("e2e: budget commits across a Redis outage", () => {
  const scenario = (outage: (server: OwnRedis) => Effect.Effect<void, Error>) =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ownRedis
      const stores = Redis.layerTokenBudgetStore.pipe(
        Layer.provide(Redis.layer({ url: server.url, prefix: "lost-commit:", commandTimeout: 500 }))
      )
      const context = yield* Layer.build(Layer.merge(stores, Tokenizer.layerApproximate))
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 1_000_000 }, period: "day" }).pipe(
        Effect.provide(context)
      )
      const fake = yield* FakeLlm.make(
        FakeLlm.delay("150 millis", FakeLlm.reply("ok", { usage: { inputTokens: 10, outputTokens: USED_PER_CALL - 10 } }))
      )
      const client = LlmClient.decorate(fake.client, budget)
      const calls = yield* Effect.fork(Effect.forEach(
        Array.from({ length: CALLS }, (_, i) => i),
        (i) => client.complete(request(i)),
        { concurrency: "unbounded" }
      ))
      yield* Effect.sleep("60 millis")
      const reservedSum = (yield* budget.usage()).reserved
      expect(reservedSum).toBeGreaterThan(CALLS * USED_PER_CALL)
      // the outage starts while every call is at the provider: each one succeeds, its commit does not get through
      yield* outage(server)
      const responses = yield* Fiber.join(calls)
      expect(responses).toHaveLength(CALLS)
      yield* Effect.sleep("1200 millis")
      yield* server.resume
      yield* server.start
      // the background retries land once the server answers again
      let after = yield* budget.usage()
      for (let i = 0; i < 100 && after.reserved > 0; i++) {
        yield* Effect.sleep(Duration.millis(100))
        after = yield* budget.usage()
      }
      expect(after.reserved).toBe(0)
      expect(after.used).toBeGreaterThanOrEqual(CALLS * USED_PER_CALL)
      expect(after.used).toBeLessThanOrEqual(reservedSum)
      return after.used
    }).pipe(Logger.withMinimumLogLevel(LogLevel.Error)))

  it.live("Redis stopped and restarted: the ledger ends ≥ the real usage and ≤ the sum of the reservations", () =>
    Effect.map(scenario((server) => server.stop), (used) => {
      // nothing reached the stopped server: every commit landed through a retry, exactly once
      expect(used).toBe(CALLS * USED_PER_CALL)
    }), 30_000)

  it.live("Redis frozen and resumed: exactly the real usage, though timed-out commits and their retries all run on resume", () =>
    Effect.map(scenario((server) => server.freeze), (used) => {
      // the first commit of each call to run marks its reservation settled; the repeats that follow charge nothing
      expect(used).toBe(CALLS * USED_PER_CALL)
    }), 30_000)
})
