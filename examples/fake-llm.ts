/**
 * FakeLlm: a scripted provider. Here the first two calls fail with 503s, the third answers after 200 ms,
 * and a stream is cut after two chunks. Run: `npx tsx examples/fake-llm.ts`
 */
import { Effect, Stream } from "effect"
import { FakeLlm, Llm, LlmClient, LlmError } from "../src/index.js"

const request = new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "Say hi" }] })

const program = Effect.gen(function* () {
  for (let i = 1; i <= 3; i++) {
    const exit = yield* Effect.either(LlmClient.complete(request))
    console.log(`call ${i}:`, exit._tag === "Right" ? `answered "${exit.right.content}"` : exit.left._tag)
  }
  const calls = yield* FakeLlm.calls
  console.log("calls recorded:", calls.map((c) => `#${c.call} attempt ${c.attempt} at ${c.at} ms`).join(", "))
}).pipe(
  Effect.provide(
    FakeLlm.layer([
      FakeLlm.fail(new LlmError.ServerError({ status: 503 })),
      FakeLlm.fail(new LlmError.ServerError({ status: 503 })),
      FakeLlm.delay("200 millis", FakeLlm.reply("Hi!"))
    ])
  )
)

const cutStream = LlmClient.stream(request).pipe(
  Stream.runForEach((chunk) => Effect.sync(() => console.log(`chunk: "${chunk.content}"`))),
  Effect.catchTag("StreamTruncated", (e) => Effect.sync(() => console.log(`stream cut after ${e.receivedChunks} chunks`))),
  Effect.provide(FakeLlm.layer(FakeLlm.cut(["Hel", "lo"], { interval: "20 millis" })))
)

Effect.runPromise(Effect.zipRight(program, cutStream))
