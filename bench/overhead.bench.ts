/**
 * Policy overhead per call on a zero-latency provider, side by side in one process:
 * the bare call, each policy alone, the full stack (retry ∘ breaker ∘ timeout), the full `Pipeline.layerMemory`
 * (cache, budget, fallback, retry, breaker, timeout) on a cache miss and a hit, and cockatiel / opossum doing
 * the same work. Every variant calls the same `async` function that resolves at once. Then the bytes allocated per
 * call on the Pipeline's miss path, from V8's sampling heap profiler (collected objects included).
 *
 * `npm run bench -- overhead`
 */
import { CircuitBreaker as OpossumBreaker } from "./opossum.js"
import { Session } from "node:inspector/promises"
import { Effect, Layer, ManagedRuntime } from "effect"
import { CircuitBreaker, Llm, LlmClient, Pipeline, ResponseCache, Retry, Timeout } from "../src/index.js"
import { measureSpread, printTable, type Row } from "./harness.js"
import { cockatielStack, notUsed, pipelineOptions, response } from "./stacks.js"

const OPS = 20_000
// The full Pipeline's miss path costs far more a call: 5 runs instead of 7 keep the benchmark short. (Runs of 20,000
// calls, as for the other rows: runs of 5,000 measured about twice the cost a call, cause not isolated.)
const MISS_OPS = 20_000
const request = new Llm.ChatRequest({
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "What is the capital of France? Answer in one word." }],
  temperature: 0
})
const provider = async () => response

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

// The full Pipeline (`stacks.ts`): a cache miss on every call (each request distinct).
const pipelineLayer = Pipeline.layerMemory(pipelineOptions).pipe(Layer.provide(LlmClient.layer(base)))

// Distinct requests (a miss each), built before each run outside the timed region: 20 users, maxTokens set.
let nextQuestion = 0
let fresh: Array<Llm.ChatRequest> = []
const prepareFresh = () => {
  fresh = Array.from({ length: MISS_OPS }, () => {
    const n = nextQuestion++
    return new Llm.ChatRequest({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `Question ${n}: what is the capital of France? Answer in one word.` }],
      maxTokens: 16,
      temperature: 0,
      user: `user-${n % 20}`
    })
  })
}

// Each Effect variant runs OPS sequential calls inside one Effect program (the way an Effect application calls).
const effectLoop = (layer: Layer.Layer<LlmClient.LlmClient, unknown>, requests?: () => ReadonlyArray<Llm.ChatRequest>) => {
  const runtime = ManagedRuntime.make(layer)
  const loop = Effect.gen(function* () {
    const client = yield* LlmClient.LlmClient
    if (requests === undefined) for (let i = 0; i < OPS; i++) yield* client.complete(request)
    else for (const r of requests()) yield* client.complete(r)
  })
  return { run: () => runtime.runPromise(loop), dispose: () => runtime.dispose() }
}

// Bytes allocated per call (collected objects included), sampled by V8 every 1 KB on average.
const bytesPerCall = async (run: () => Promise<unknown>, calls: number): Promise<number> => {
  const session = new Session()
  session.connect()
  await session.post("HeapProfiler.enable")
  await session.post("HeapProfiler.startSampling", {
    samplingInterval: 1024,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true
  })
  await run()
  const { profile } = await session.post("HeapProfiler.stopSampling")
  session.disconnect()
  let total = 0
  const walk = (node: { selfSize: number; children: ReadonlyArray<typeof node> }) => {
    total += node.selfSize
    for (const child of node.children) walk(child)
  }
  walk(profile.head)
  return total / calls
}

async function main() {
  const rows: Array<Row> = []

  rows.push({
    name: "bare await provider()",
    ...await measureSpread(async () => {
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
    ["effect: ResponseCache hit (temperature 0)", stackLayer(ResponseCache.policy({ ttl: "1 hour" }))],
    ["effect: full Pipeline.layerMemory, cache hit", pipelineLayer]
  ]
  for (const [name, layer] of variants) {
    const loop = effectLoop(layer)
    rows.push({ name, ...await measureSpread(loop.run, OPS) })
    await loop.dispose()
  }
  const miss = effectLoop(pipelineLayer, () => fresh)
  rows.push({ name: "effect: full Pipeline.layerMemory, cache miss", ...await measureSpread(miss.run, MISS_OPS, 5, 2, prepareFresh) })

  const cockatiel = cockatielStack()
  rows.push({
    name: "cockatiel wrap(retry,breaker,timeout)",
    ...await measureSpread(async () => {
      for (let i = 0; i < OPS; i++) await cockatiel.execute(() => provider())
    }, OPS)
  })

  const opossum = new OpossumBreaker(provider, { timeout: 30_000, errorThresholdPercentage: 50, resetTimeout: 30_000 })
  rows.push({
    name: "opossum fire() (breaker+timeout)",
    ...await measureSpread(async () => {
      for (let i = 0; i < OPS; i++) await opossum.fire()
    }, OPS)
  })
  opossum.shutdown()

  printTable(`Policy overhead per call (${OPS} sequential calls per run, median of 7 runs after 2 warm-up runs, of 5 for the cache miss)`, rows, "cockatiel wrap(retry,breaker,timeout)")

  // Allocation on the miss path: one more run of fresh requests under the sampling heap profiler.
  prepareFresh()
  const missBytes = await bytesPerCall(miss.run, MISS_OPS)
  const cockatielBytes = await bytesPerCall(async () => {
    for (let i = 0; i < MISS_OPS; i++) await cockatiel.execute(() => provider())
  }, MISS_OPS)
  await miss.dispose()
  console.log(`\nAllocated per call (V8 sampling heap profiler, collected objects included, ${MISS_OPS} calls)`)
  console.log(`effect: full Pipeline.layerMemory, cache miss  ${missBytes.toFixed(0).padStart(8)} bytes/call`)
  console.log(`cockatiel wrap(retry,breaker,timeout)          ${cockatielBytes.toFixed(0).padStart(8)} bytes/call`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
