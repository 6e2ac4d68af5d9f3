/**
 * Policy overhead per call on a zero-latency provider, side by side in one process:
 * the bare call, each policy alone, the full stack (retry ∘ breaker ∘ timeout), and cockatiel / opossum doing
 * the same work. Every variant calls the same `async` function that resolves at once.
 *
 * `npm run bench -- overhead`
 */
import { CircuitBreaker as OpossumBreaker } from "./opossum.js"
import {
  ConsecutiveBreaker,
  ExponentialBackoff,
  circuitBreaker,
  handleAll,
  retry,
  timeout,
  TimeoutStrategy,
  wrap
} from "cockatiel"
import { Effect, Layer, ManagedRuntime } from "effect"
import { CircuitBreaker, Llm, LlmClient, ResponseCache, Retry, Timeout } from "../src/index.js"
import { measure, printTable, type Row } from "./harness.js"

const OPS = 20_000
const request = new Llm.ChatRequest({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "What is the capital of France? Answer in one word." }],
  temperature: 0
})
const response = new Llm.ChatResponse({
  id: "1",
  model: "gpt-4o-mini",
  content: "ok",
  finishReason: "stop",
  usage: { inputTokens: 1, outputTokens: 1 },
  servedFrom: "provider"
})
const provider = async () => response

const notUsed = () => {
  throw new Error("not used")
}
// The same zero-latency async function every contender wraps: a Timeout above it races it in a fiber of its own.
const base: LlmClient.Service = { complete: () => Effect.promise(provider), stream: notUsed }
// A provider that enforces a Timeout's deadline itself by aborting its request, as the OpenAI adapter does: the
// same async function through `LlmClient.tryPromise`, declared with `enforces: { deadline: true }`.
const enforcing: LlmClient.Service = {
  complete: () => Effect.orDie(LlmClient.tryPromise({ try: () => provider(), catch: (error) => error })),
  stream: notUsed,
  enforces: { deadline: true }
}

type Stores = CircuitBreaker.CircuitBreakerStore | ResponseCache.ResponseCacheStore

const stackOver = (service: LlmClient.Service) => (...policies: ReadonlyArray<LlmClient.PolicyInput<unknown, Stores>>) =>
  LlmClient.layerWith(...policies).pipe(
    Layer.provide(LlmClient.layer(service)),
    Layer.provide(Layer.merge(CircuitBreaker.layerStoreMemory, ResponseCache.layerStoreMemory))
  )
const stackLayer = stackOver(base)
const enforcingStack = stackOver(enforcing)

// Each Effect variant runs OPS sequential calls inside one Effect program (the way an Effect application calls).
const effectLoop = (layer: Layer.Layer<LlmClient.LlmClient, unknown>) => {
  const runtime = ManagedRuntime.make(layer)
  const loop = Effect.gen(function* () {
    const client = yield* LlmClient.LlmClient
    for (let i = 0; i < OPS; i++) yield* client.complete(request)
  })
  return { run: () => runtime.runPromise(loop), dispose: () => runtime.dispose() }
}

async function main() {
  const rows: Array<Row> = []

  rows.push({
    name: "bare await provider()",
    medianNs: await measure(async () => {
      for (let i = 0; i < OPS; i++) await provider()
    }, OPS)
  })

  const variants: Array<[string, Layer.Layer<LlmClient.LlmClient, unknown>]> = [
    ["effect: no policy", stackLayer()],
    ["effect: Retry", stackLayer(Retry.policy({ maxRetries: 3 }))],
    ["effect: CircuitBreaker", stackLayer(CircuitBreaker.policy({ per: "model" }))],
    ["effect: Timeout (any provider: a racing fiber)", stackLayer(Timeout.policy({ attempt: "30 seconds" }))],
    ["effect: Timeout (provider enforces the deadline)", enforcingStack(Timeout.policy({ attempt: "30 seconds" }))],
    [
      "effect: Retry+Breaker+Timeout (any provider)",
      stackLayer(
        Retry.policy({ maxRetries: 3 }),
        CircuitBreaker.policy({ per: "model" }),
        Timeout.policy({ attempt: "30 seconds" })
      )
    ],
    [
      "effect: Retry+Breaker+Timeout (provider enforces the deadline)",
      enforcingStack(
        Retry.policy({ maxRetries: 3 }),
        CircuitBreaker.policy({ per: "model" }),
        Timeout.policy({ attempt: "30 seconds" })
      )
    ],
    ["effect: ResponseCache hit (temperature 0)", stackLayer(ResponseCache.policy({ ttl: "1 hour" }))]
  ]
  for (const [name, layer] of variants) {
    const loop = effectLoop(layer)
    rows.push({ name, medianNs: await measure(loop.run, OPS) })
    await loop.dispose()
  }

  const cockatiel = wrap(
    retry(handleAll, { maxAttempts: 3, backoff: new ExponentialBackoff() }),
    circuitBreaker(handleAll, { halfOpenAfter: 30_000, breaker: new ConsecutiveBreaker(5) }),
    timeout(30_000, TimeoutStrategy.Cooperative)
  )
  rows.push({
    name: "cockatiel wrap(retry,breaker,timeout)",
    medianNs: await measure(async () => {
      for (let i = 0; i < OPS; i++) await cockatiel.execute(() => provider())
    }, OPS)
  })

  const opossum = new OpossumBreaker(provider, { timeout: 30_000, errorThresholdPercentage: 50, resetTimeout: 30_000 })
  rows.push({
    name: "opossum fire() (breaker+timeout)",
    medianNs: await measure(async () => {
      for (let i = 0; i < OPS; i++) await opossum.fire()
    }, OPS)
  })
  opossum.shutdown()

  printTable(`Policy overhead per call (${OPS} sequential calls per run, median of 7 runs)`, rows, "cockatiel wrap(retry,breaker,timeout)")
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
