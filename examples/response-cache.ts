/**
 * ResponseCache: 20 concurrent identical requests share one provider call, a repeat is a cache hit, another user
 * with the same prompt gets an answer of their own, a non-deterministic request is not cached, and a stream hit
 * replays the stored answer as chunks. Run: `npx tsx examples/response-cache.ts`
 */
import { Effect, Layer, Stream } from "effect"
import { FakeLlm, Llm, LlmClient, LlmMetrics, ResponseCache } from "../src/index.js"

const ask = (user: string, question: string, temperature = 0) =>
  new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: question }], temperature, user })

const program = Effect.gen(function* () {
  const question = "What is the capital of France?"

  const burst = yield* Effect.all(
    Array.from({ length: 20 }, () => LlmClient.complete(ask("alice", question))),
    { concurrency: "unbounded" }
  )
  const served = burst.reduce<Record<string, number>>((acc, r) => ({ ...acc, [r.servedFrom]: (acc[r.servedFrom] ?? 0) + 1 }), {})
  console.log(`20 concurrent identical requests → ${(yield* FakeLlm.calls).length} provider call; served from`, served)

  const again = yield* LlmClient.complete(ask("alice", question))
  console.log(`alice asks again → servedFrom "${again.servedFrom}": "${again.content}"`)

  const bob = yield* LlmClient.complete(ask("bob", question))
  console.log(`bob asks the same → servedFrom "${bob.servedFrom}" (his own entry: caches are scoped by user)`)

  const creative = yield* LlmClient.complete(ask("alice", question, 0.9))
  const creativeAgain = yield* LlmClient.complete(ask("alice", question, 0.9))
  console.log(`temperature 0.9, twice → "${creative.servedFrom}", "${creativeAgain.servedFrom}" (not deterministic: not cached)`)

  const chunks = yield* Stream.runCollect(LlmClient.stream(ask("alice", question)))
  const replay = [...chunks]
  console.log(`stream of a cached answer → ${replay.length} chunks, servedFrom "${replay[0].servedFrom}", ` +
    `last finishReason "${replay[replay.length - 1].finishReason}"`)

  console.log("cache stats:", yield* ResponseCache.stats)
  console.log(`provider calls in total: ${(yield* FakeLlm.calls).length}`)
  console.log(LlmMetrics.formatTable(yield* LlmMetrics.snapshot))
})

const Cache = ResponseCache.layer({ ttl: "1 hour", capacity: 1000 }).pipe(Layer.provide(ResponseCache.layerStoreMemory))
const Live = LlmClient.layerWith(ResponseCache.current).pipe(
  Layer.provideMerge(FakeLlm.layer(FakeLlm.delay("200 millis", FakeLlm.reply("Paris.")))),
  Layer.provideMerge(Cache)
)

Effect.runPromise(program.pipe(Effect.provide(Live)))
