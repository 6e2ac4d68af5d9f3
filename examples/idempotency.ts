/**
 * Idempotency: a client that retries "refund order 42" three times at once causes one provider call; a later retry
 * replays the recorded answer; reusing the key for another request is refused; a final failure is replayed, a
 * retryable one is not stored; with onInFlight "reject" a concurrent duplicate fails fast.
 * Run: `npx tsx examples/idempotency.ts`
 */
import { Effect, Layer } from "effect"
import { FakeLlm, Idempotency, Llm, LlmClient, LlmError, LlmMetrics } from "../src/index.js"

const refund = (order: number, idempotencyKey: string) =>
  new Llm.ChatRequest({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `Write the refund confirmation for order ${order}.` }],
    user: "customer-7",
    idempotencyKey
  })

const outcome = (effect: Effect.Effect<Llm.ChatResponse, LlmError.LlmError, LlmClient.LlmClient>) =>
  Effect.map(Effect.either(effect), (result) =>
    result._tag === "Right"
      ? `${result.right.servedFrom}: "${result.right.content}"`
      : `${result.left._tag}${result.left._tag === "IdempotencyConflict" ? ` (${result.left.reason})` : ""}`)

const script: FakeLlm.Script = ({ attempt, request }) => {
  const text = request.messages[0].content
  if (text.includes("order 13")) return FakeLlm.fail(new LlmError.ContentFiltered({ model: request.model }))
  if (text.includes("order 99") && attempt === 1) return FakeLlm.fail(new LlmError.ServerError({ status: 503 }))
  return FakeLlm.delay("300 millis", FakeLlm.reply(`Refund for ${text.match(/order \d+/)?.[0]} issued.`))
}

const waitMode = Effect.gen(function* () {
  const retries = yield* Effect.all([1, 2, 3].map(() => outcome(LlmClient.complete(refund(42, "refund-42")))), {
    concurrency: "unbounded"
  })
  console.log("3 concurrent retries of refund-42 →", retries)
  console.log(`provider calls so far: ${(yield* FakeLlm.calls).length}`)
  console.log("a later retry →", yield* outcome(LlmClient.complete(refund(42, "refund-42"))))
  console.log("refund-42 reused for order 43 →", yield* outcome(LlmClient.complete(refund(43, "refund-42"))))
  console.log("refund-13, final failure →", yield* outcome(LlmClient.complete(refund(13, "refund-13"))))
  console.log("refund-13 again (replayed) →", yield* outcome(LlmClient.complete(refund(13, "refund-13"))))
  console.log("refund-99, 503 (retryable) →", yield* outcome(LlmClient.complete(refund(99, "refund-99"))))
  console.log("refund-99 retried (the 503 was not stored) →", yield* outcome(LlmClient.complete(refund(99, "refund-99"))))
  console.log(`provider calls: ${(yield* FakeLlm.calls).length}`)
}).pipe(
  Effect.provide(
    LlmClient.layerWith(Idempotency.policy({ ttl: "24 hours" })).pipe(
      Layer.provideMerge(FakeLlm.layer(script)),
      Layer.provide(Idempotency.layerStoreMemory)
    )
  )
)

const rejectMode = Effect.gen(function* () {
  const both = yield* Effect.all(
    [outcome(LlmClient.complete(refund(7, "refund-7"))), outcome(LlmClient.complete(refund(7, "refund-7")))],
    { concurrency: "unbounded" }
  )
  console.log("onInFlight: reject, two concurrent calls →", both)
}).pipe(
  Effect.provide(
    LlmClient.layerWith(Idempotency.policy({ onInFlight: "reject" })).pipe(
      Layer.provide(FakeLlm.layer(script)),
      Layer.provide(Idempotency.layerStoreMemory)
    )
  )
)

const program = Effect.gen(function* () {
  yield* waitMode
  yield* rejectMode
  console.log(`idempotent replays recorded: ${(yield* LlmMetrics.snapshot).idempotencyReplays}`)
})

Effect.runPromise(program)
