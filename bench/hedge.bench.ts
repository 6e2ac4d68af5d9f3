/**
 * Hedging against ChaosServer on loopback: a workload whose calls answer in 10–15 ms except a 5 % tail that
 * hangs until the 1 s attempt timeout, run without hedging and with `Hedge.policy({ after: { percentile: 95 } })`,
 * both under the same Retry and retry budget. Then a full outage (every call a slow 503): calls sent upstream with and
 * without hedging. `npm run bench -- hedge`
 */
import { Effect, Redacted } from "effect"
import { ChaosServer, Hedge, Llm, LlmClient, Retry, Timeout } from "../src/index.js"
import * as OpenAi from "../src/OpenAi.js"
import { percentile } from "./scenarios.js"

const N = Number(process.env.HEDGE_N ?? 1_000)
const CONCURRENCY = 8

const request = (i: number) =>
  new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: `Summarise ticket #${i}` }] })

interface Result {
  readonly ok: number
  readonly upstream: number
  readonly p50: number
  readonly p95: number
  readonly p99: number
  readonly seconds: number
}

const run = (faults: ChaosServer.Faults, hedge: boolean) =>
  Effect.scoped(Effect.gen(function* () {
    const server = yield* ChaosServer.make({ seed: 9, words: 4, faults })
    const base = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
    const budget = yield* Retry.makeBudget({ ratio: 0.2, minPerSecond: 1 })
    const client = LlmClient.decorate(
      base,
      Retry.policy({ maxRetries: 2, baseDelay: "1 millis", maxDelay: "5 millis", budget }),
      ...(hedge ? [yield* Hedge.policy({ after: { percentile: 95, initial: "50 millis" }, budget })] : []),
      Timeout.attempt("1 second")
    )
    const started = performance.now()
    const outcomes = yield* Effect.forEach(
      Array.from({ length: N }, (_, i) => i),
      (i) => {
        const t0 = performance.now()
        return Effect.map(Effect.either(client.complete(request(i))), (e) => ({ ok: e._tag === "Right", ms: performance.now() - t0 }))
      },
      { concurrency: CONCURRENCY }
    )
    const ms = outcomes.map((o) => o.ms)
    return {
      ok: outcomes.filter((o) => o.ok).length,
      upstream: (yield* server.stats).requests,
      p50: percentile(ms, 0.5),
      p95: percentile(ms, 0.95),
      p99: percentile(ms, 0.99),
      seconds: (performance.now() - started) / 1000
    } satisfies Result
  }))

const print = (title: string, rows: ReadonlyArray<readonly [string, Result]>) => {
  const header = ["client", "success", "upstream/req", "p50 ms", "p95 ms", "p99 ms", "wall"]
  const all = [header, ...rows.map(([name, r]) => [
    name,
    `${((r.ok / N) * 100).toFixed(1)} %`,
    (r.upstream / N).toFixed(3),
    r.p50.toFixed(1),
    r.p95.toFixed(1),
    r.p99.toFixed(1),
    `${r.seconds.toFixed(1)} s`
  ])]
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)))
  console.log(`\n${title}`)
  for (const r of all) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  "))
}

const program = Effect.gen(function* () {
  const tail: ChaosServer.Faults = { latency: "10 millis", jitter: "5 millis", hangRate: 0.05 }
  const plain = yield* run(tail, false)
  const hedged = yield* run(tail, true)
  print(`${N} calls, 10–15 ms each, 5 % hanging until the 1 s attempt timeout (concurrency ${CONCURRENCY})`, [
    ["Retry + Timeout", plain],
    ["Retry + Hedge(p95) + Timeout", hedged]
  ])
  console.log(`p99 cut ${(plain.p99 / hedged.p99).toFixed(1)}×, extra upstream calls ${(((hedged.upstream - plain.upstream) / N) * 100).toFixed(1)} % of the calls`)
  const outage: ChaosServer.Faults = { latency: "20 millis", outage: { status: 503 } }
  const down = yield* run(outage, false)
  const downHedged = yield* run(outage, true)
  print("full outage: every call a 503 after 20 ms", [["Retry + Timeout", down], ["Retry + Hedge(p95) + Timeout", downHedged]])
})

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exit(1)
})
