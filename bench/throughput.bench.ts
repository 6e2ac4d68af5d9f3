/**
 * Throughput and peak memory at 1000 calls in flight: 50,000 calls (after 5,000 warm-up calls) to a provider that
 * answers in 1 ms, each contender in a child process of its own so its peak RSS is its own. Every contender gets the
 * same prebuilt requests (each distinct, so the Pipeline's cache misses every time) and calls the same `async`
 * function; 1000 workers each take the next request until none is left.
 *
 * `npm run bench -- throughput`
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect, Layer, ManagedRuntime } from "effect"
import { CircuitBreaker, Llm, LlmClient, Pipeline, Retry, Timeout } from "../src/index.js"
import { cockatielStack, notUsed, pipelineOptions, response } from "./stacks.js"

const CALLS = 50_000
const WARMUP = 5_000
const IN_FLIGHT = 1000
const RUNS = 3

const provider = () => new Promise<Llm.ChatResponse>((resolve) => setTimeout(() => resolve(response), 1))

const requests = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) =>
    new Llm.ChatRequest({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: `Question ${from + i}: what is the capital of France? Answer in one word.` }],
      maxTokens: 16,
      temperature: 0,
      user: `user-${(from + i) % 20}`
    }))

type Run = (batch: ReadonlyArray<Llm.ChatRequest>) => Promise<void>

const base: LlmClient.Service = { complete: () => Effect.promise(provider), stream: notUsed }

const effectRunner = (layer: Layer.Layer<LlmClient.LlmClient, unknown>): Run => {
  const runtime = ManagedRuntime.make(layer)
  return (batch) =>
    runtime.runPromise(Effect.gen(function* () {
      const client = yield* LlmClient.LlmClient
      let next = 0
      const worker = Effect.suspend(function loop(): Effect.Effect<void, unknown> {
        if (next >= batch.length) return Effect.void
        return Effect.flatMap(client.complete(batch[next++]), loop)
      })
      yield* Effect.all(Array.from({ length: IN_FLIGHT }, () => worker), { concurrency: "unbounded", discard: true })
    }))
}

const contenders: Record<string, () => Run> = {
  "cockatiel wrap(retry,breaker,timeout)": () => {
    const policy = cockatielStack()
    return async (batch) => {
      let next = 0
      const worker = async () => {
        while (next < batch.length) {
          next++
          await policy.execute(() => provider())
        }
      }
      await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
    }
  },
  "effect: Retry+Breaker+Timeout (any provider)": () =>
    effectRunner(
      LlmClient.layerWith(
        Retry.policy({ maxRetries: 3 }),
        CircuitBreaker.policy({ per: "model" }),
        Timeout.policy({ attempt: "30 seconds" })
      ).pipe(Layer.provide(LlmClient.layer(base)), Layer.provide(CircuitBreaker.layerStoreMemory))
    ),
  "effect: full Pipeline.layerMemory, cache miss": () =>
    effectRunner(
      Pipeline.layerMemory(pipelineOptions).pipe(Layer.provide(LlmClient.layer(base)))
    )
}

async function child(name: string) {
  const run = contenders[name]()
  const warm = requests(0, WARMUP)
  const timed = requests(WARMUP, CALLS)
  await run(warm)
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc) gc()
  const start = performance.now()
  await run(timed)
  const seconds = (performance.now() - start) / 1000
  process.stdout.write(JSON.stringify({ callsPerSecond: CALLS / seconds, peakRssMb: process.resourceUsage().maxRSS / 1024 }))
  process.exit(0)
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function main() {
  const self = fileURLToPath(import.meta.url)
  const results: Array<{ name: string; cps: Array<number>; rss: Array<number> }> = []
  for (const name of Object.keys(contenders)) results.push({ name, cps: [], rss: [] })
  // Contenders interleaved run by run, so a change in the machine's load falls on all of them.
  for (let r = 0; r < RUNS; r++) {
    for (const result of results) {
      const out = spawnSync(process.execPath, ["--expose-gc", self, result.name], { encoding: "utf8", timeout: 120_000 })
      if (out.status !== 0) throw new Error(`${result.name}: exit ${out.status ?? out.signal}\n${out.stderr}`)
      const { callsPerSecond, peakRssMb } = JSON.parse(out.stdout) as { callsPerSecond: number; peakRssMb: number }
      result.cps.push(callsPerSecond)
      result.rss.push(peakRssMb)
    }
  }
  const ref = results[0]
  const width = Math.max(...results.map((r) => r.name.length))
  console.log(
    `\nThroughput at ${IN_FLIGHT} calls in flight (${CALLS.toLocaleString("en")} calls to a 1 ms provider after ${WARMUP.toLocaleString("en")} warm-up calls, one child process per contender and run, median of ${RUNS} runs)`
  )
  console.log(
    `${"".padEnd(width)}  ${"calls/s".padStart(8)}  ${"runs min–max".padStart(13)}  ${"× cockatiel".padStart(11)}  ${"peak RSS MB".padStart(11)}  ${"× cockatiel".padStart(11)}`
  )
  for (const r of results) {
    const cps = median(r.cps)
    const rss = median(r.rss)
    const spread = `${Math.min(...r.cps).toFixed(0)}–${Math.max(...r.cps).toFixed(0)}`
    console.log(
      `${r.name.padEnd(width)}  ${cps.toFixed(0).padStart(8)}  ${spread.padStart(13)}  ${(cps / median(ref.cps)).toFixed(2).padStart(11)}  ${rss.toFixed(0).padStart(11)}  ${(rss / median(ref.rss)).toFixed(2).padStart(11)}`
    )
  }
}

if (process.argv[2] !== undefined) {
  child(process.argv[2]).catch((error) => {
    console.error(error)
    process.exit(1)
  })
} else {
  main()
}
