/**
 * Chaos outcomes against a ChaosServer on loopback, the library's stack beside the naive patterns (bench/naive.ts):
 * success rate under 20 % transient faults, calls sent upstream per logical request (in normal running and during a
 * full outage: retry amplification), p50/p99 latency, and the cost of the reference workload (30 % repeated
 * questions). `npm run bench -- chaos`
 */
import { Effect, Layer, Redacted } from "effect"
import { ChaosServer, Llm, LlmClient, LlmMetrics, Pricing, ResponseCache, CircuitBreaker } from "../src/index.js"
import * as OpenAi from "../src/OpenAi.js"
import { chaosFaults, libraryRun, naiveRun, percentile, resilience, type RunResult, workload } from "./scenarios.js"

const N = 600
const OUTAGE = 64
const CONCURRENCY = 16

const row = (name: string, n: number, r: RunResult, usdPerAnswer: number) =>
  [
    name,
    `${((r.ok / n) * 100).toFixed(1)} %`,
    (r.upstream / n).toFixed(2),
    String(Math.round(percentile(r.latenciesMs, 0.5))),
    String(Math.round(percentile(r.latenciesMs, 0.99))),
    `$${(r.billed * usdPerAnswer).toFixed(4)}`,
    `${r.seconds.toFixed(1)} s`
  ]

const print = (title: string, rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const header = ["client", "success", "upstream/req", "p50 ms", "p99 ms", "cost", "wall"]
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)))
  console.log(`\n${title}`)
  for (const r of all) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "))
}

const program = Effect.gen(function* () {
  const server = yield* ChaosServer.ChaosServer
  const provider = yield* LlmClient.LlmClient
  // Every answer of the workload costs about the same: price one from the table (gpt-4o, ~40 in, ~12 out tokens).
  const usdPerAnswer = Pricing.costOf(Pricing.defaultTable["gpt-4o"], { inputTokens: 40, outputTokens: 12 })

  const requests = workload(N)
  const naive = yield* naiveRun(server, requests, { concurrency: CONCURRENCY })
  const stack = yield* resilience
  const library = yield* libraryRun(server, LlmClient.decorate(provider, ...stack.policies), requests, { concurrency: CONCURRENCY })
  const cache = yield* ResponseCache.policy({ ttl: "1 hour", capacity: 10_000 })
  const cached = yield* libraryRun(
    server,
    LlmClient.decorate(provider, cache, ...(yield* resilience).policies),
    requests,
    { concurrency: CONCURRENCY }
  )
  print(`${N} requests, 20 % transient faults (Retry-After in ms), concurrency ${CONCURRENCY}`, [
    row("naive retry loop (tutorial, SDK retries inside)", N, naive, usdPerAnswer),
    row("library: fallback+retry+breaker+timeout", N, library, usdPerAnswer),
    row("library + response cache", N, cached, usdPerAnswer)
  ])

  yield* server.setConfig({ faults: { ...chaosFaults, outage: { status: 503 } } })
  const outage = workload(OUTAGE).map((r, i) => new Llm.ChatRequest({ ...r, user: `u${i}`, temperature: 0.7 }))
  const naiveOutage = yield* naiveRun(server, outage, { concurrency: OUTAGE })
  const libraryOutage = yield* libraryRun(server, LlmClient.decorate(provider, ...(yield* resilience).policies), outage, { concurrency: OUTAGE })
  print(`Full outage (every call 503), ${OUTAGE} requests at once: retry amplification`, [
    row("naive retry loop (tutorial, SDK retries inside)", OUTAGE, naiveOutage, usdPerAnswer),
    row("library: fallback+retry budget+breaker+timeout", OUTAGE, libraryOutage, usdPerAnswer)
  ])
  const snapshot = yield* LlmMetrics.snapshot
  console.log(`\nlibrary metrics over both runs: ${snapshot.requests} provider calls, ${snapshot.retries} retries, ` +
    `${snapshot.fallbacks} fallbacks, ${snapshot.breakerOpens} breaker opens, cache hit rate ${(snapshot.cacheHitRate * 100).toFixed(1)} %`)
})

const Live = Layer.mergeAll(
  Layer.unwrapEffect(Effect.map(ChaosServer.ChaosServer, (s) => OpenAi.layer({ apiKey: Redacted.make("sk-bench"), baseURL: s.baseURL }))),
  CircuitBreaker.layerStoreMemory,
  ResponseCache.layerStoreMemory
).pipe(Layer.provideMerge(ChaosServer.layer({ seed: 11, words: 8, faults: chaosFaults })))

Effect.runPromise(Effect.scoped(program).pipe(Effect.provide(Live))).catch((error) => {
  console.error(error)
  process.exit(1)
})
