/**
 * Timeout: a per-attempt deadline that lets Retry try again, a total deadline over the whole logical call, and
 * first-token / idle deadlines on streams. A caller's own interruption is never reported as a Timeout.
 * Run: `npx tsx examples/timeout.ts`
 */
import { Clock, Duration, Effect, Exit, Fiber, Layer, Stream } from "effect"
import { FakeLlm, Llm, LlmClient, LlmError, Retry, Timeout } from "../src/index.js"

const request = new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Write a haiku" }] })

const show = <A, R>(label: string, effect: Effect.Effect<A, LlmError.LlmError, R>) =>
  Effect.gen(function* () {
    const started = yield* Clock.currentTimeMillis
    const exit = yield* Effect.either(effect)
    const ms = (yield* Clock.currentTimeMillis) - started
    console.log(`${label.padEnd(52)} ${exit._tag === "Right" ? "ok  " : "fail"} in ${String(ms).padStart(4)} ms: ${
      exit._tag === "Right" ? String(exit.right) : exit.left.message
    }`)
  })

const withStack = (script: FakeLlm.Script, ...policies: Array<LlmClient.Policy>) =>
  Effect.provide(LlmClient.layerWith(...policies).pipe(Layer.provide(FakeLlm.layer(script))))

const text = <R>(stream: Stream.Stream<Llm.ChatChunk, LlmError.LlmError, R>) =>
  Effect.map(Stream.runCollect(stream), (chunks) => JSON.stringify(Llm.joinChunks(chunks)))

const program = Effect.gen(function* () {
  // 1. One slow call: the attempt deadline fails it with Timeout { phase: "attempt" } and interrupts it.
  yield* show("1. slow call, attempt 200 ms", Effect.map(LlmClient.complete(request), (r) => r.content)).pipe(
    withStack(FakeLlm.delay("2 seconds", FakeLlm.reply("late")), Timeout.attempt("200 millis"))
  )

  // 2. The first attempt hangs; the attempt deadline lets Retry try again, and the second call answers.
  yield* show("2. hang then answer, retry ∘ attempt 200 ms", Effect.map(LlmClient.complete(request), (r) => r.content)).pipe(
    withStack([FakeLlm.hang, FakeLlm.reply("second attempt")], Retry.policy({ baseDelay: "50 millis" }), Timeout.attempt("200 millis"))
  )

  // 3. Always hanging: the total deadline (outermost) bounds attempts and backoff waits together.
  yield* show("3. always hangs, total 700 ms ∘ retry ∘ attempt 200", Effect.map(LlmClient.complete(request), (r) => r.content)).pipe(
    withStack(
      FakeLlm.hang,
      Timeout.total("700 millis"),
      Retry.policy({ maxRetries: 10, baseDelay: "50 millis" }),
      Timeout.attempt("200 millis")
    )
  )

  // 4. Streams: the first chunk must come within 300 ms, then each next one within 100 ms.
  const streaming = Timeout.policy({ firstToken: "300 millis", idle: "100 millis" })
  yield* show("4a. stream, first chunk after 1 s", text(LlmClient.stream(request))).pipe(
    withStack(FakeLlm.stream(["Old ", "pond"], { firstChunkAfter: "1 second" }), streaming)
  )
  yield* show("4b. stream stalls 500 ms after its first chunk", text(LlmClient.stream(request))).pipe(
    withStack(FakeLlm.stream(["Old ", "pond"], { firstChunkAfter: "50 millis", interval: "500 millis" }), streaming)
  )
  yield* show("4c. stream within both deadlines", text(LlmClient.stream(request))).pipe(
    withStack(FakeLlm.stream(["Old ", "pond, ", "frog"], { firstChunkAfter: "50 millis", interval: "20 millis" }), streaming)
  )

  // 5. The caller gives up first: an interruption, not a Timeout.
  const exit = yield* Effect.gen(function* () {
    const fiber = yield* Effect.fork(LlmClient.complete(request))
    yield* Effect.sleep("50 millis")
    return yield* Fiber.interrupt(fiber)
  }).pipe(withStack(FakeLlm.hang, Timeout.attempt("10 seconds")))
  console.log(`5. caller interrupts after 50 ms: interrupted = ${Exit.isInterrupted(exit)}, timeout = false`)
  console.log(`   (the deadline would have been ${Duration.format(Duration.seconds(10))})`)
})

Effect.runPromise(program)
