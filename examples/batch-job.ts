/**
 * BatchJob over the ChaosServer: 200 classifications through the Batch API (the real `openai` SDK: files.create,
 * batches.create / retrieve, files.content), with 2 lines the server fails. The first runner is stopped half way
 * (a crash); a second one, over the same store, resumes the same batch (the server's counters show one upload and
 * one batch). Prints the per-item outcome counts, the typed failures, and the cost at batch prices beside the
 * synchronous price of the same tokens. Runs in well under a second.
 * Run: `npx tsx examples/batch-job.ts`
 */
import { Effect, Exit, Fiber, Layer, Option, Redacted } from "effect"
import * as BatchJob from "../src/BatchJob.js"
import { ChaosServer, Llm, Pricing } from "../src/index.js"

const requests = Array.from({ length: 200 }, (_, i) =>
  new Llm.ChatRequest({
    model: "gpt-4o-mini",
    messages: [
      { role: "system", content: "Classify the ticket as billing, bug or other. Answer with one word." },
      { role: "user", content: `Ticket ${i}: the invoice total looks wrong.` }
    ],
    maxTokens: 5
  }))

const program = Effect.gen(function* () {
  const server = yield* ChaosServer.make({ seed: 1, words: 3, batch: { completionTime: "200 millis", failCustomIds: ["item-13", "item-150"] } })
  const options = { apiKey: Redacted.make("sk-chaos-example"), baseURL: server.baseURL }
  const store = yield* Layer.build(BatchJob.layerStoreMemory)
  const spec: BatchJob.Spec = { key: "classify-tickets", requests, pollInterval: "25 millis" }

  const first = yield* BatchJob.make(options).pipe(Effect.provide(store))
  const crashed = yield* Effect.fork(first.run(spec))
  yield* Effect.sleep("80 millis")
  yield* Fiber.interrupt(crashed)
  console.log("first runner stopped while the batch was in progress")

  const second = yield* BatchJob.make(options).pipe(Effect.provide(store))
  const result = yield* second.run(spec)
  const stats = yield* server.batchStats
  console.log(`batch ${result.batchId}: ${result.status}; uploads ${stats.filesCreated}, batches created ${stats.batchesCreated}`)
  console.log(`${result.succeeded} answered, ${result.failed} failed`)
  result.results.forEach((exit, i) => {
    if (Exit.isFailure(exit) && exit.cause._tag === "Fail") console.log(`  item ${i}: ${exit.cause.error._tag}`)
  })
  const sync = Option.getOrThrow(yield* Pricing.cost("gpt-4o-mini", result.usage))
  const batch = Option.getOrThrow(result.costUsd)
  console.log(`${result.usage.inputTokens} input + ${result.usage.outputTokens} output tokens`)
  console.log(`cost $${batch.toFixed(6)} at batch prices, $${sync.toFixed(6)} synchronously (${(batch / sync * 100).toFixed(0)} %)`)
  if (stats.batchesCreated !== 1 || result.succeeded !== 198) return yield* Effect.dieMessage("unexpected outcome")
})

Effect.runPromise(Effect.scoped(program)).catch((error) => {
  console.error(error)
  process.exit(1)
})
