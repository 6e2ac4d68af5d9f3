/**
 * Hedging against a ChaosServer whose calls answer in about 10 ms except 5 % that hang: 200 requests without
 * hedging (the hung ones wait for the 1 s attempt timeout and a retry) and with `Hedge.policy({ after: { percentile:
 * 95 } })` (a hung call gets a second attempt after about the 95th percentile), both under the same Retry and retry
 * budget. Prints p50 / p99 and the calls sent upstream. Seeded faults. Runs in a few seconds.
 * Run: `npx tsx examples/hedging.ts`
 */
import { Duration, Effect, Redacted } from "effect"
import { ChaosServer, Hedge, Llm, LlmClient, Retry, Timeout } from "../src/index.js"
import * as OpenAi from "../src/OpenAi.js"

const N = 200

const request = (i: number) =>
  new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Summarise ticket #${i}` }] })

const run = (hedge: boolean) =>
  Effect.scoped(Effect.gen(function* () {
    const server = yield* ChaosServer.make({ seed: 3, words: 4, faults: { latency: "8 millis", jitter: "4 millis", hangRate: 0.05 } })
    const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos-example"), baseURL: server.baseURL })
    const budget = yield* Retry.makeBudget({ ratio: 0.2 })
    const client = LlmClient.decorate(
      base,
      Retry.policy({ maxRetries: 2, baseDelay: "5 millis", budget }),
      ...(hedge ? [yield* Hedge.policy({ after: { percentile: 95, initial: "100 millis" }, budget })] : []),
      Timeout.attempt("1 second")
    )
    const latencies = yield* Effect.forEach(Array.from({ length: N }, (_, i) => i), (i) =>
      Effect.map(Effect.timed(client.complete(request(i))), ([d]) => Duration.toMillis(d)), { concurrency: 8 })
    const sorted = [...latencies].sort((a, b) => a - b)
    const at = (q: number) => Math.round(sorted[Math.ceil(q * N) - 1])
    const stats = yield* server.stats
    console.log(
      `${hedge ? "with Hedge(p95)" : "without hedging"}  p50 ${String(at(0.5)).padStart(4)} ms  p99 ${
        String(at(0.99)).padStart(4)
      } ms  upstream calls ${stats.requests} for ${N} requests (${stats.byOutcome.hang ?? 0} hung, ${stats.aborted} aborted)`
    )
  }))

Effect.runPromise(Effect.zipRight(run(false), run(true))).catch((error) => {
  console.error(error)
  process.exit(1)
})
