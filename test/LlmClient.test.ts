import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Ref, Stream } from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"

const request = new ChatRequest({ model: "m", messages: [{ role: "user", content: "hi" }] })

const recording = (name: string, log: Ref.Ref<Array<string>>): LlmClient.Policy =>
  LlmClient.policy({
    name,
    complete: (next) => (req) =>
      Ref.update(log, (l) => [...l, `${name}:before`]).pipe(
        Effect.zipRight(next(req)),
        Effect.tap(() => Ref.update(log, (l) => [...l, `${name}:after`]))
      ),
    stream: (next) => (req) =>
      Stream.unwrap(Effect.as(Ref.update(log, (l) => [...l, `${name}:stream`]), next(req)))
  })

describe("LlmClient.layerWith", () => {
  it.effect("applies policies outermost first, for complete and stream", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<Array<string>>([])
      const layer = LlmClient.layerWith(
        recording("a", log),
        Effect.succeed(recording("b", log)),
        recording("c", log)
      ).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("ok"))))
      const response = yield* LlmClient.complete(request).pipe(Effect.provide(layer))
      expect(response.content).toBe("ok")
      expect(yield* Ref.get(log)).toEqual(["a:before", "b:before", "c:before", "c:after", "b:after", "a:after"])
      yield* Ref.set(log, [])
      const chunks = yield* LlmClient.stream(request).pipe(Stream.runCollect, Effect.provide(layer))
      expect([...chunks].map((c) => c.content).join("")).toBe("ok")
      expect(yield* Ref.get(log)).toEqual(["a:stream", "b:stream", "c:stream"])
    }))

  it.effect("a policy without stream passes streams through", () =>
    Effect.gen(function* () {
      const only = LlmClient.policy({ name: "complete-only", complete: (next) => next })
      const layer = LlmClient.layerWith(only).pipe(Layer.provide(FakeLlm.layer(FakeLlm.reply("a b c"))))
      const chunks = yield* LlmClient.stream(request).pipe(Stream.runCollect, Effect.provide(layer))
      expect([...chunks].map((c) => c.content)).toEqual(["a ", "b ", "c", ""])
    }))

  it.effect("a failing policy constructor fails the layer", () =>
    Effect.gen(function* () {
      const layer = LlmClient.layerWith(Effect.fail("bad options" as const)).pipe(
        Layer.provide(FakeLlm.layer(FakeLlm.reply("ok")))
      )
      const error = yield* LlmClient.complete(request).pipe(Effect.provide(layer), Effect.flip)
      expect(error).toBe("bad options")
    }))

  it.effect("withPolicies decorates the client for one effect only", () =>
    Effect.gen(function* () {
      const log = yield* Ref.make<Array<string>>([])
      yield* LlmClient.withPolicies(LlmClient.complete(request), recording("x", log))
      yield* LlmClient.complete(request)
      expect(yield* Ref.get(log)).toEqual(["x:before", "x:after"])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.reply("ok")))))
})
