/**
 * CircuitBreaker: a provider outage opens the breaker, callers are turned away at once (the provider is not
 * called), a probe finds the provider still down (the break grows), then the outage ends and a probe closes it.
 * Run: `npx tsx examples/circuit-breaker.ts`
 */
import { Clock, Duration, Effect, Layer, Option, Stream } from "effect"
import { CircuitBreaker, FakeLlm, Llm, LlmClient, LlmError, LlmMetrics } from "../src/index.js"

let outage = false
const Provider = FakeLlm.layer(() =>
  outage ? FakeLlm.fail(new LlmError.ServerError({ status: 503 })) : FakeLlm.delay("20 millis", FakeLlm.reply("ok"))
)

const request = new Llm.ChatRequest({ model: "gpt-4o", messages: [{ role: "user", content: "Summarise the report" }] })

const program = Effect.gen(function* () {
  const breaker = yield* CircuitBreaker.policy({
    per: "model",
    failureThreshold: 3,
    halfOpenAfter: { initial: "300 millis", max: "2 seconds", factor: 2 }
  })
  const start = yield* Clock.currentTimeMillis
  const log = (text: string) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      Effect.sync(() => console.log(`${String(now - start).padStart(5)} ms  ${text}`)))

  // Print every transition as it happens (each is published exactly once).
  const transitions = yield* breaker.subscribe
  yield* Effect.forkScoped(Stream.runForEach(Stream.fromQueue(transitions), (t) =>
    log(`  => ${t.key}: ${t.from} -> ${t.to} (${t.reason})${
      Option.match(t.breakDuration, { onNone: () => "", onSome: (d) => `, break ${Duration.format(d)}` })
    }`)))

  const call = LlmClient.complete(request).pipe(
    Effect.matchEffect({
      onSuccess: (response) => log(`call answered "${response.content}"`),
      onFailure: (error) =>
        error._tag === "CircuitOpen"
          ? log(`call rejected at once: circuit open, retry after ${Duration.format(error.retryAfter)}`)
          : log(`call failed: ${error._tag}`)
    }),
    Effect.zipLeft(Effect.sleep("1 millis"))
  )

  const scenario = Effect.gen(function* () {
    yield* log("provider healthy")
    yield* Effect.repeatN(call, 1)
    outage = true
    yield* log("outage starts")
    yield* Effect.repeatN(call, 4)
    yield* log(`${(yield* FakeLlm.calls).length} calls reached the provider; the rejected ones never left the process`)
    yield* Effect.sleep("300 millis")
    yield* log("the break is over: one probe goes through, the provider is still down")
    yield* Effect.repeatN(call, 1)
    outage = false
    yield* log("outage over; waiting for the (longer) second break")
    yield* Effect.sleep("600 millis")
    yield* Effect.repeatN(call, 1)
    const status = yield* breaker.state("gpt-4o")
    yield* log(`breaker for gpt-4o is ${status.state}`)
  })
  yield* LlmClient.withPolicies(scenario, breaker)

  const metrics = yield* LlmMetrics.snapshot
  console.log(`\nprovider calls: ${metrics.requests}, breaker opens: ${metrics.breakerOpens}, rejected by the breaker: ${metrics.breakerRejections}`)
}).pipe(
  Effect.scoped,
  Effect.provide(Layer.merge(Provider, CircuitBreaker.layerStoreMemory))
)

Effect.runPromise(program)
