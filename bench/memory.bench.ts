/**
 * Heap after many calls over distinct users through `Pipeline.layerMemory` with a per-user daily budget, a breaker
 * per model, a bulkhead and retries: every per-key map must stay bounded. `npx tsx bench/memory.bench.ts [calls]`
 * (default 1,000,000 calls, each from a new user). The provider is a zero-latency client of the benchmark's own (no
 * call log), so only the library's state is measured.
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { ChatRequest, ChatResponse } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as Pipeline from "../src/Pipeline.js"

const calls = Number(process.argv[2] ?? 1_000_000)
const BOUND_MB = 150

const provider = LlmClient.layer({
  complete: (request) =>
    Effect.succeed(new ChatResponse({
      id: "x",
      model: request.model,
      content: "ok",
      finishReason: "stop",
      usage: { inputTokens: 12, outputTokens: 3 },
      servedFrom: "provider"
    })),
  stream: () => Effect.dieMessage("not used") as never
})

const Live = Pipeline.layerMemory({
  budgets: [{ scope: "user", limit: { tokens: 10_000 }, period: "day" }],
  retry: { maxRetries: 2 },
  breaker: { per: "model" },
  bulkhead: { maxConcurrent: 64 },
  timeout: { attempt: "30 seconds" }
}).pipe(Layer.provide(provider))

const heapMb = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc) {
    gc()
    gc()
  }
  return process.memoryUsage().heapUsed / 1024 / 1024
}

const main = async () => {
  const runtime = ManagedRuntime.make(Live)
  const client = await runtime.runPromise(LlmClient.LlmClient)
  const request = (i: number) =>
    new ChatRequest({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Classify this ticket" }],
      maxTokens: 50,
      user: `user-${i}`
    })
  await runtime.runPromise(client.complete(request(-1)))
  const before = heapMb()
  const start = performance.now()
  const batch = 1000
  const samples: Array<[number, number]> = []
  for (let i = 0; i < calls; i += batch) {
    await runtime.runPromise(
      Effect.forEach(Array.from({ length: batch }, (_, k) => i + k), (k) => client.complete(request(k)), {
        concurrency: 50,
        discard: true
      })
    )
    if ((i + batch) % (calls / 10) === 0) samples.push([i + batch, heapMb()])
  }
  const seconds = (performance.now() - start) / 1000
  const after = heapMb()
  console.log(`\nHeap through Pipeline.layerMemory, ${calls.toLocaleString("en")} calls, each from a new user`)
  console.log("(per-user daily budget, breaker per model, bulkhead, retries, attempt timeout)")
  console.log(`${"calls".padStart(12)}  ${"heap MB".padStart(8)}`)
  console.log(`${"0".padStart(12)}  ${before.toFixed(1).padStart(8)}`)
  for (const [n, mb] of samples) console.log(`${n.toLocaleString("en").padStart(12)}  ${mb.toFixed(1).padStart(8)}`)
  console.log(`${(calls / seconds).toFixed(0)} calls/s; heap after: ${after.toFixed(1)} MB (bound ${BOUND_MB} MB)`)
  await runtime.dispose()
  if (after > BOUND_MB) {
    console.log(`heap above the bound of ${BOUND_MB} MB`)
    process.exitCode = 1
  }
}

main()
