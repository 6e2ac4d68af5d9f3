import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, TestClock } from "effect"
import * as Embeddings from "../src/Embeddings.js"
import { ServerError } from "../src/LlmError.js"

const vectorOf = (text: string) => [text.length, text.charCodeAt(0)]

/** A fake upstream recording each call's inputs; `mode` makes it fail or answer too few vectors. */
const upstream = (mode: "ok" | "fail" | "short" = "ok") => {
  const calls: Array<ReadonlyArray<string>> = []
  const embed: Embeddings.EmbedFn = (request) =>
    Effect.suspend(() => {
      calls.push(request.input)
      if (mode === "fail") return Effect.fail(new ServerError({ model: request.model, status: 503 }))
      const vectors = request.input.map(vectorOf)
      return Effect.succeed(new Embeddings.EmbedResponse({
        model: request.model,
        embeddings: mode === "short" ? vectors.slice(1) : vectors,
        usage: { inputTokens: request.input.join("").length }
      }))
    })
  return { calls, service: { embed } }
}

const one = (text: string, model = "m") => new Embeddings.EmbedRequest({ model, input: [text] })

describe("Embeddings.batching", () => {
  it.effect("concurrent calls within the window share one upstream call; each gets its own vector (TestClock)", () =>
    Effect.gen(function*() {
      const { calls, service } = upstream()
      const client = Embeddings.decorate(service, yield* Embeddings.batching({ window: "50 millis", maxBatchSize: 3 }))
      const texts = ["a", "bb", "ccc", "dddd", "eeeee"]
      const fiber = yield* Effect.fork(Effect.all(texts.map((t) => client.embed(one(t))), { concurrency: "unbounded" }))
      yield* TestClock.adjust("50 millis")
      const responses = yield* Fiber.join(fiber)
      expect(calls).toEqual([["a", "bb", "ccc"], ["dddd", "eeeee"]])
      expect(responses.map((r) => r.embeddings[0])).toEqual(texts.map(vectorOf))
      expect(responses.map((r) => r.usage.inputTokens)).toEqual([1, 2, 3, 4, 5])
    }))

  it.effect("models are never mixed in one call; a call with several texts passes straight through", () =>
    Effect.gen(function*() {
      const { calls, service } = upstream()
      const client = Embeddings.decorate(service, yield* Embeddings.batching({ window: "10 millis" }))
      const fiber = yield* Effect.fork(Effect.all([
        client.embed(one("x", "m1")),
        client.embed(one("y", "m2")),
        client.embed(one("z", "m1")),
        client.embed(new Embeddings.EmbedRequest({ model: "m1", input: ["p", "q"] }))
      ], { concurrency: "unbounded" }))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(fiber)
      expect([...calls].map((c) => c.join()).sort()).toEqual(["p,q", "x,z", "y"])
    }))

  it.effect("a failed shared call fails each caller with its error; a short answer is MalformedResponse for all", () =>
    Effect.gen(function*() {
      for (const [mode, tag] of [["fail", "ServerError"], ["short", "MalformedResponse"]] as const) {
        const { service } = upstream(mode)
        const client = Embeddings.decorate(service, yield* Embeddings.batching({ window: "10 millis" }))
        const fiber = yield* Effect.fork(Effect.all([client.embed(one("a")), client.embed(one("b"))].map(Effect.exit), { concurrency: "unbounded" }))
        yield* TestClock.adjust("10 millis")
        const exits = yield* Fiber.join(fiber)
        for (const exit of exits) {
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error._tag : "?").toBe(tag)
        }
      }
    }))

  it.effect("layerWith decorates the Embeddings below it, outermost first", () =>
    Effect.gen(function*() {
      const order: Array<string> = []
      const tag = (name: string): Embeddings.Policy => (next) => (request) => Effect.zipRight(Effect.sync(() => order.push(name)), next(request))
      const { service } = upstream()
      const response = yield* Embeddings.embed(one("hi")).pipe(
        Effect.provide(Embeddings.layerWith(tag("outer"), tag("inner"))),
        Effect.provideService(Embeddings.Embeddings, service)
      )
      expect(response.embeddings).toEqual([vectorOf("hi")])
      expect(order).toEqual(["outer", "inner"])
    }))

  it.effect("cache: one upstream call per key for its ttl (TestClock), tenant-scoped, failures not kept", () =>
    Effect.gen(function*() {
      const { calls, service } = upstream()
      const client = Embeddings.decorate(service, yield* Embeddings.cache({ ttl: "1 hour" }))
      const alice = new Embeddings.EmbedRequest({ model: "m", input: ["same"], user: "alice" })
      const bob = new Embeddings.EmbedRequest({ model: "m", input: ["same"], user: "bob" })
      yield* Effect.all(Array.from({ length: 10 }, () => client.embed(alice)), { concurrency: "unbounded" })
      expect(calls).toHaveLength(1)
      yield* client.embed(bob)
      expect(calls).toHaveLength(2)
      yield* TestClock.adjust("59 minutes")
      yield* client.embed(alice)
      expect(calls).toHaveLength(2)
      yield* TestClock.adjust("2 minutes")
      yield* client.embed(alice)
      expect(calls).toHaveLength(3)
      const failing = upstream("fail")
      const flaky = Embeddings.decorate(failing.service, yield* Embeddings.cache({ ttl: "1 hour" }))
      yield* Effect.exit(flaky.embed(alice))
      yield* Effect.exit(flaky.embed(alice))
      expect(failing.calls).toHaveLength(2)
      const bad = yield* Effect.flip(Embeddings.cache({ ttl: -1, capacity: 0 }))
      expect(bad.issues.map((i) => i.path)).toEqual(["ttl", "capacity"])
    }))
})
