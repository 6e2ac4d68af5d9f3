import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Redacted, Stream } from "effect"
import * as ChaosServer from "../../src/ChaosServer.js"
import * as Fallback from "../../src/Fallback.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as OpenAi from "../../src/OpenAi.js"
import * as Retry from "../../src/Retry.js"
import * as Timeout from "../../src/Timeout.js"

const request = (model: string) => new ChatRequest({ model, messages: [{ role: "user", content: "Tell me a story" }] })
const retry = Retry.policy({ maxRetries: 3, baseDelay: "1 millis", maxDelay: "5 millis" })

const withServer = <A, E>(
  options: ChaosServer.Options,
  body: (server: ChaosServer.Service, client: LlmClient.Service) => Effect.Effect<A, E>
) =>
  Effect.scoped(Effect.gen(function* () {
    const server = yield* ChaosServer.make(options)
    const client = yield* OpenAi.make({ apiKey: Redacted.make("sk-chaos"), baseURL: server.baseURL })
    return yield* body(server, client)
  }))

// Through the real `openai` SDK: ChaosServer opens every stream with OpenAI's `{ role: "assistant", content: "" }`.
// Before streams decided "started" on progress, each of the first three failed after a single upstream request.
describe("e2e: a stream that fails before its first text is retried and falls back", () => {
  it.live("cut before any text: retried until the retries run out (the server sees 1 + maxRetries requests)", () =>
    withServer({ seed: 1, faults: { cutRate: 1, cutAfterChunks: 0 } }, (server, base) =>
      Effect.gen(function* () {
        const client = LlmClient.decorate(base, retry)
        const error = yield* Effect.flip(Stream.runCollect(client.stream(request("gpt-4o-mini"))))
        expect(error._tag).toBe("StreamTruncated")
        expect((yield* server.stats).requests).toBe(4)
      })))

  it.live("a malformed event before any text: retried", () =>
    withServer({ seed: 2, faults: { malformedRate: 1 } }, (server, base) =>
      Effect.gen(function* () {
        const client = LlmClient.decorate(base, retry)
        const error = yield* Effect.flip(Stream.runCollect(client.stream(request("gpt-4o-mini"))))
        expect(error._tag).toBe("MalformedResponse")
        expect((yield* server.stats).requests).toBe(4)
      })))

  it.live("cut before any text on the primary: the stream falls back and the backup answers in full", () =>
    withServer({ seed: 3, perModel: { "gpt-4o": { cutRate: 1, cutAfterChunks: 0 } } }, (server, base) =>
      Effect.gen(function* () {
        const client = LlmClient.decorate(base, Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }), retry)
        const chunks = Chunk.toReadonlyArray(yield* Stream.runCollect(client.stream(request("gpt-4o"))))
        expect(chunks.at(-1)?.model).toBe("gpt-4o-mini")
        expect(chunks.at(-1)?.finishReason).toBe("stop")
        expect(chunks.map((c) => c.content).join("").length).toBeGreaterThan(0)
        expect((yield* server.stats).requests).toBe(5)
      })))

  it.live("cut after text: neither retried nor handed to another model", () =>
    withServer({ seed: 4, perModel: { "gpt-4o": { cutRate: 1, cutAfterChunks: 2 } } }, (server, base) =>
      Effect.gen(function* () {
        const client = LlmClient.decorate(base, Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }), retry)
        const received: Array<string> = []
        const error = yield* Effect.flip(
          Stream.runForEach(client.stream(request("gpt-4o")), (c) => Effect.sync(() => received.push(c.content)))
        )
        expect(error._tag).toBe("StreamTruncated")
        expect(received).toHaveLength(2)
        expect((yield* server.stats).requests).toBe(1)
      })))

  it.live("a firstToken deadline measures the first text: the role delta arriving at once does not satisfy it", () =>
    withServer({ seed: 5, faults: { firstTokenDelay: "400 millis" } }, (_server, base) =>
      Effect.gen(function* () {
        const client = LlmClient.decorate(base, Timeout.policy({ firstToken: "100 millis" }))
        const error = yield* Effect.flip(Stream.runCollect(client.stream(request("gpt-4o-mini"))))
        expect(error._tag).toBe("Timeout")
        if (error._tag === "Timeout") expect(error.phase).toBe("firstToken")
        // and a first text within the deadline passes
        const fast = LlmClient.decorate(base, Timeout.policy({ firstToken: "2 seconds" }))
        const chunks = yield* Stream.runCollect(fast.stream(request("gpt-4o-mini")))
        expect(Chunk.toReadonlyArray(chunks).at(-1)?.finishReason).toBe("stop")
      })))
})
