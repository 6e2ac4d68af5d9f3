/**
 * RateLimit: a per-user limit in "fail" mode refuses alice's 21st call of the minute with
 * RateLimited { source: "client", retryAfter } while bob is unaffected; then 8 concurrent calls under a per-model
 * limit of 240 requests per minute (a burst, then one every 250 ms) wait their turn instead of collecting 429s.
 * Uses the real clock (about 1 s). Run: `npx tsx examples/rate-limit.ts`
 */
import { Clock, Duration, Effect, Layer } from "effect"
import { FakeLlm, Llm, LlmClient, LlmMetrics, RateLimit, Tokenizer } from "../src/index.js"

const ask = (user: string, text: string) =>
  new Llm.ChatRequest({ model: "gpt-4o-mini", user, maxTokens: 50, messages: [{ role: "user", content: text }] })

const Live = LlmClient.layerWith(
  RateLimit.policy({ rpm: 20, per: "user", onLimit: "fail", name: "per-user" }),
  RateLimit.policy({ rpm: 240, tpm: 100_000, per: "model", onLimit: "wait", maxWait: "10 seconds" })
).pipe(
  Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))),
  Layer.provide(RateLimit.layerStoreMemory),
  Layer.provide(Tokenizer.layer)
)

const program = Effect.gen(function* () {
  // Per-user limit in "fail" mode: alice gets 20 calls a minute, bob is unaffected.
  let refused = "none refused"
  for (let i = 1; i <= 21; i++) {
    const result = yield* Effect.either(LlmClient.complete(ask("alice", `q${i}`)))
    if (result._tag === "Left" && result.left._tag === "RateLimited") {
      const wait = Duration.format(result.left.retryAfter ?? Duration.zero)
      refused = `alice's call ${i}: ${result.left._tag} (source ${result.left.source}, retry after ${wait})`
    }
  }
  console.log(refused)
  const bob = yield* LlmClient.complete(ask("bob", "hello"))
  console.log(`bob: answered "${bob.content}"`)

  // 240 rpm per model is a burst of 240 then one every 250 ms: use up all but 4 of the burst so the waits show.
  yield* Effect.forEach(Array.from({ length: 240 - 21 - 4 }, (_, i) => ask(`warmup-${i}`, "hi")), LlmClient.complete, {
    concurrency: "unbounded"
  })
  const start = yield* Clock.currentTimeMillis
  yield* Effect.forEach(
    Array.from({ length: 8 }, (_, i) => i),
    (i) =>
      LlmClient.complete(ask(`user-${i}`, `question ${i}`)).pipe(
        Effect.zipRight(Clock.currentTimeMillis),
        Effect.tap((at) => Effect.sync(() => console.log(`call ${i} answered after ${at - start} ms`)))
      ),
    { concurrency: "unbounded" }
  )

  const counted = yield* LlmMetrics.snapshot
  console.log(`provider calls: ${counted.requests} for 8 + 215 + 22 asked (one refused before reaching the provider)`)
}).pipe(Effect.provide(Live))

Effect.runPromise(program)
