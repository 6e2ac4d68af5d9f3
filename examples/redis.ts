/**
 * Redis: two "processes" (two connections, one key prefix) share their state through the Redis stores — a cache
 * entry paid for by one is a hit on the other, a budget is spent by both together, and a breaker opened by one turns
 * callers of the other away without calling its provider.
 * Needs Redis (`REDIS_URL`, default redis://127.0.0.1:6379); says so and exits when there is none.
 * Run: `npx tsx examples/redis.ts`
 */
import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { CircuitBreaker, FakeLlm, Llm, LlmClient, LlmError, Pipeline, Tokenizer } from "../src/index.js"
import * as Redis from "../src/Redis.js"

const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"
// A prefix of our own, deleted at the end: the example never touches other keys.
const prefix = `example:${randomUUID()}:`

/** One process: its own connection and provider, the shared prefix. */
const connection = Redis.layer({ url, prefix, retryStrategy: () => null })

const pipelineProcess = Pipeline.layer({
  cache: { ttl: "1 hour" },
  budgets: [{ scope: "user", limit: { tokens: 1_000 }, period: "day" }]
}).pipe(
  Layer.provideMerge(FakeLlm.layer(FakeLlm.reply("Paris.", { usage: { inputTokens: 100, outputTokens: 100 } }))),
  Layer.provide(Layer.merge(Redis.layerStores, Tokenizer.layer)),
  Layer.provide(connection)
)

const breakerProcess = LlmClient.layerWith(CircuitBreaker.policy({ per: "model", failureThreshold: 2 })).pipe(
  Layer.provideMerge(FakeLlm.layer(FakeLlm.fail(new LlmError.ServerError({ status: 503 })))),
  Layer.provide(Redis.layerCircuitBreakerStore),
  Layer.provide(connection)
)

const ask = (content: string) =>
  new Llm.ChatRequest({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content }],
    maxTokens: 100,
    temperature: 0,
    user: "alice"
  })

const outcome = <R>(effect: Effect.Effect<Llm.ChatResponse, LlmError.LlmError, R>) =>
  Effect.match(effect, { onFailure: (e) => e._tag, onSuccess: (r) => `answered (${r.servedFrom})` })

const program = Effect.gen(function* () {
  const a = yield* Layer.build(pipelineProcess)
  const b = yield* Layer.build(pipelineProcess)

  console.log("cache")
  console.log(`  A asks "capital of France?":  ${yield* outcome(LlmClient.complete(ask("capital of France?"))).pipe(Effect.provide(a))}`)
  console.log(`  B asks the same:             ${yield* outcome(LlmClient.complete(ask("capital of France?"))).pipe(Effect.provide(b))}`)

  console.log("budget: 1,000 tokens a day for alice, each answer costs 200, calls alternate between A and B")
  for (let i = 1; i <= 6; i++) {
    const process = i % 2 === 1 ? a : b
    console.log(`  call ${i} via ${i % 2 === 1 ? "A" : "B"}: ${yield* outcome(LlmClient.complete(ask(`question ${i}`))).pipe(Effect.provide(process))}`)
  }
  const calls = (yield* FakeLlm.calls.pipe(Effect.provide(a))).length + (yield* FakeLlm.calls.pipe(Effect.provide(b))).length
  console.log(`  provider calls in both processes together: ${calls} (1 cached question + 4 within the budget)`)

  console.log("breaker: 2 failures open it for the whole fleet")
  const c = yield* Layer.build(breakerProcess)
  const d = yield* Layer.build(breakerProcess)
  const request = ask("anything")
  console.log(`  C: ${yield* outcome(LlmClient.complete(request)).pipe(Effect.provide(c))}`)
  console.log(`  D: ${yield* outcome(LlmClient.complete(request)).pipe(Effect.provide(d))}`)
  console.log(`  C: ${yield* outcome(LlmClient.complete(request)).pipe(Effect.provide(c))}`)
  const calledC = (yield* FakeLlm.calls.pipe(Effect.provide(c))).length
  console.log(`  C's provider was called ${calledC} time(s): the third call was turned away by the break D recorded`)
})

const cleanup = Effect.flatMap(Redis.RedisClient, (redis) =>
  redis.use("SCAN/UNLINK", async (client) => {
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${redis.prefix}*`, "COUNT", 1000)
      cursor = next
      if (keys.length > 0) await client.unlink(...keys)
    } while (cursor !== "0")
  })).pipe(Effect.provide(connection))

const main = Effect.scoped(program).pipe(
  Effect.ensuring(Effect.ignore(cleanup)),
  Effect.catchTag("RedisError", (error) =>
    Effect.sync(() => console.log(`Redis is not reachable at ${url} (${error.reason}): start one, e.g. docker run -p 6379:6379 redis:7`)))
)

Effect.runPromise(main)
