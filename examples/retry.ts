/**
 * Retry: backoff with jitter, Retry-After, and a retry budget that keeps an outage from multiplying traffic.
 * Run: `npx tsx examples/retry.ts`
 */
import { Clock, Duration, Effect, Layer } from "effect"
import { FakeLlm, Llm, LlmClient, LlmError, LlmMetrics, Retry } from "../src/index.js"

const request = (n = 0) =>
  new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Summarise ticket #${n}` }] })
const unavailable = new LlmError.ServerError({ status: 503 })

// 1. Two 503s, then an answer. Full jitter (the default) spreads the waits over [0, 100 ms], [0, 200 ms].
const flaky = Effect.gen(function* () {
  const start = yield* Clock.currentTimeMillis
  const response = yield* LlmClient.complete(request())
  const calls = yield* FakeLlm.calls
  console.log(`1. answered "${response.content}" after ${calls.length} calls, at ${calls.map((c) => c.at - start).join(", ")} ms`)
}).pipe(Effect.provide(
  LlmClient.layerWith(Retry.policy({
    maxRetries: 3,
    baseDelay: "100 millis",
    onRetry: (e) => console.log(`   retry #${e.retry} after ${e.error._tag}, waiting ${Math.round(Duration.toMillis(e.delay))} ms`)
  })).pipe(Layer.provideMerge(FakeLlm.layer([FakeLlm.fail(unavailable), FakeLlm.fail(unavailable), FakeLlm.reply("Done.")])))
))

// 2. A 429 asking for 400 ms: the Retry-After wins over the (shorter) computed delay.
const rateLimited = Effect.gen(function* () {
  const start = yield* Clock.currentTimeMillis
  yield* LlmClient.complete(request())
  const calls = yield* FakeLlm.calls
  console.log(`2. rate limited, Retry-After 400 ms: second call ${calls[1].at - start} ms after the first`)
}).pipe(Effect.provide(
  LlmClient.layerWith(Retry.policy({ baseDelay: "10 millis" })).pipe(
    Layer.provideMerge(FakeLlm.layer([
      FakeLlm.fail(new LlmError.RateLimited({ retryAfter: Duration.millis(400) })),
      FakeLlm.reply("ok")
    ]))
  )
))

// 3. A full outage: 500 logical calls against a dead provider, with and without a shared retry budget.
const outage = (withBudget: boolean) =>
  Effect.gen(function* () {
    const budget = withBudget ? yield* Retry.makeBudget({ ratio: 0.2 }) : undefined
    const client = LlmClient.decorate(yield* LlmClient.LlmClient, Retry.policy({ baseDelay: "5 millis", budget }))
    yield* Effect.forEach(Array.from({ length: 500 }, (_, i) => i), (i) => Effect.either(client.complete(request(i))), {
      concurrency: 50
    })
    const sent = (yield* FakeLlm.calls).length
    console.log(`3. outage, ${withBudget ? "with a retry budget   " : "without a retry budget"}: ${sent} provider calls for 500 logical calls (${(sent / 500).toFixed(2)} each)`)
  }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.fail(unavailable))))

const program = Effect.gen(function* () {
  yield* flaky
  yield* rateLimited
  yield* outage(false)
  yield* outage(true)
  const snapshot = yield* LlmMetrics.snapshot
  console.log(`llm_retries_total: ${snapshot.retries}`)
})

Effect.runPromise(program)
