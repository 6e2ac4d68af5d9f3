/**
 * Bulkhead: 10 requests arrive at once for a model that takes 200 ms per call. The bulkhead runs 3 at a time,
 * queues 4 (first in, first out) and turns the last 3 away at once with BulkheadRejected, so a burst never
 * opens more than 3 connections to the provider. Run: `npx tsx examples/bulkhead.ts`
 */
import { Clock, Effect } from "effect"
import { Bulkhead, FakeLlm, Llm, LlmClient, LlmMetrics } from "../src/index.js"

const request = (i: number) =>
  new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: `question ${i}` }] })

const program = Effect.gen(function* () {
  const bulkhead = yield* Bulkhead.policy({ maxConcurrent: 3, maxQueue: 4, per: "model" })
  const start = yield* Clock.currentTimeMillis
  const since = Effect.map(Clock.currentTimeMillis, (now) => `${String(now - start).padStart(4)} ms`)

  const one = (i: number) =>
    LlmClient.complete(request(i)).pipe(
      Effect.matchEffect({
        onSuccess: (response) => Effect.map(since, (t) => `request ${i}: answered "${response.content}" at ${t}`),
        onFailure: (error) => Effect.map(since, (t) => `request ${i}: ${error._tag} at ${t}`)
      })
    )

  const burst = Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.forEach([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], one, { concurrency: "unbounded" }))
    yield* Effect.sleep("50 millis")
    const stats = yield* bulkhead.stats("gpt-4o")
    console.log(`after 50 ms: ${stats.running} running, ${stats.queued} queued (limits ${stats.maxConcurrent} + ${stats.maxQueue})`)
    return yield* fiber.await.pipe(Effect.flatten)
  })
  const lines = yield* LlmClient.withPolicies(burst, bulkhead)
  for (const line of lines) console.log(line)

  const metrics = yield* LlmMetrics.snapshot
  console.log(`\nprovider calls: ${metrics.requests}, rejected by the bulkhead: ${metrics.bulkheadRejections}`)
}).pipe(Effect.provide(FakeLlm.layer(FakeLlm.delay("200 millis", FakeLlm.echo))))

Effect.runPromise(program)
