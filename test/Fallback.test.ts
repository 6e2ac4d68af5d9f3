import { describe, expect, it } from "@effect/vitest"
import { Cause, Duration, Effect, Exit, Fiber, Layer, Metric, Option, Stream, TestClock } from "effect"
import * as Fallback from "../src/Fallback.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as Retry from "../src/Retry.js"

const request = (model: string) => new ChatRequest({ model, messages: [{ role: "user", content: "hi" }] })

const stack = (script: FakeLlm.Script, ...policies: Array<LlmClient.Policy>) =>
  LlmClient.layerWith(...policies).pipe(Layer.provideMerge(FakeLlm.layer(script)))

/** A script where each model has its own step; others answer "from <model>". */
const perModel = (steps: Record<string, FakeLlm.Step>): FakeLlm.Script => ({ request: r }) =>
  steps[r.model] ?? FakeLlm.reply(`from ${r.model}`)

const calledModels = Effect.map(FakeLlm.calls, (calls) => calls.map((c) => c.request.model))

const unavailable = new LlmError.ServerError({ status: 503 })

const fallbacksOf = (from: string, to: string, reason: string) =>
  Effect.map(
    Metric.value(LlmMetrics.fallbacks.pipe(Metric.tagged("from", from), Metric.tagged("to", to), Metric.tagged("reason", reason))),
    (state) => state.count
  )

describe("Fallback.policy: complete", () => {
  it.effect("answers from the second model when the first is down; the response names it", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("gpt-4o"))
      expect(response.model).toBe("gpt-4o-mini")
      expect(response.content).toBe("from gpt-4o-mini")
      expect(yield* calledModels).toEqual(["gpt-4o", "gpt-4o-mini"])
    }).pipe(Effect.provide(stack(
      perModel({ "gpt-4o": FakeLlm.fail(unavailable) }),
      Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] })
    ))))

  it.effect("the first model answering means no fallback", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("gpt-4o"))
      expect(response.model).toBe("gpt-4o")
      expect(yield* calledModels).toEqual(["gpt-4o"])
    }).pipe(Effect.provide(stack(perModel({}), Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] })))))

  it.effect("skips an open circuit at once, and records the fallback with from, to and reason", () =>
    Effect.gen(function* () {
      const before = yield* fallbacksOf("fb-a", "fb-b", "CircuitOpen")
      const response = yield* LlmClient.complete(request("fb-a"))
      expect(response.model).toBe("fb-b")
      expect(yield* calledModels).toEqual(["fb-a", "fb-b"])
      expect((yield* fallbacksOf("fb-a", "fb-b", "CircuitOpen")) - before).toBe(1)
    }).pipe(Effect.provide(stack(
      perModel({ "fb-a": FakeLlm.fail(new LlmError.CircuitOpen({ key: "fb-a", retryAfter: Duration.seconds(30) })) }),
      Fallback.policy({ models: ["fb-a", "fb-b"] })
    ))))

  it.effect("each model is retried below the fallback before moving on", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request("gpt-4o")))
      yield* TestClock.adjust("1 minute")
      const response = yield* Fiber.join(fiber)
      expect(response.model).toBe("gpt-4o-mini")
      expect(yield* calledModels).toEqual(["gpt-4o", "gpt-4o", "gpt-4o", "gpt-4o-mini"])
    }).pipe(Effect.provide(stack(
      perModel({ "gpt-4o": FakeLlm.fail(unavailable) }),
      Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
      Retry.policy({ maxRetries: 2, jitter: "none" })
    ))))

  it.effect("a Retry-After over maxRetryAfter hands over to the next model without waiting", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("gpt-4o")) // the TestClock never moves
      expect(response.model).toBe("gpt-4o-mini")
    }).pipe(Effect.provide(stack(
      perModel({ "gpt-4o": FakeLlm.fail(new LlmError.RateLimited({ retryAfter: Duration.minutes(5) })) }),
      Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }),
      Retry.policy()
    ))))

  it.effect("every model failing gives AllModelsFailed with each model's error, in order", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request("a")))
      expect(error._tag).toBe("AllModelsFailed")
      const failures = (error as LlmError.AllModelsFailed).failures
      expect(failures.map((f) => [f.model, f._tag])).toEqual([
        ["a", "ServerError"],
        ["b", "ModelNotFound"],
        ["c", "Timeout"]
      ])
      expect(error.message).toBe("All models failed: a → ServerError, b → ModelNotFound, c → Timeout")
    }).pipe(Effect.provide(stack(
      perModel({
        a: FakeLlm.fail(unavailable),
        b: FakeLlm.fail(new LlmError.ModelNotFound({ model: "b" })),
        c: FakeLlm.fail(new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(30) }))
      }),
      Fallback.policy({ models: ["a", "b", "c"] })
    ))))

  const triggers: ReadonlyArray<LlmError.LlmError> = [
    new LlmError.RateLimited({}),
    unavailable,
    new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(30) }),
    new LlmError.ConnectionError({}),
    new LlmError.MalformedResponse({ reason: "not JSON" }),
    new LlmError.StreamTruncated({ receivedChunks: 0 }),
    new LlmError.CircuitOpen({ key: "a", retryAfter: Duration.seconds(30) }),
    new LlmError.BulkheadRejected({ key: "a", maxConcurrent: 1, maxQueue: 0 }),
    new LlmError.ModelNotFound({}),
    new LlmError.ContentFiltered({}),
    new LlmError.ContextTooLong({})
  ]
  for (const error of triggers) {
    it.effect(`${error._tag} moves on to the next model by default`, () =>
      Effect.gen(function* () {
        expect(Fallback.defaultWhen(error)).toBe(true)
        expect((yield* LlmClient.complete(request("a"))).model).toBe("b")
        expect(yield* calledModels).toEqual(["a", "b"])
      }).pipe(Effect.provide(stack(perModel({ a: FakeLlm.fail(error) }), Fallback.policy({ models: ["a", "b"] })))))
  }

  const terminal: ReadonlyArray<LlmError.LlmError> = [
    new LlmError.BadRequest({ param: "temperature" }),
    new LlmError.AuthError({ status: 401 }),
    new LlmError.BudgetExceeded({ scope: "user", requested: 100, remaining: 0 }),
    new LlmError.IdempotencyConflict({ key: "k", reason: "payload-mismatch" })
  ]
  for (const error of terminal) {
    it.effect(`${error._tag} never falls back: returned as is after one call`, () =>
      Effect.gen(function* () {
        expect(Fallback.defaultWhen(error)).toBe(false)
        expect(yield* Effect.flip(LlmClient.complete(request("a")))).toEqual(error)
        expect(yield* calledModels).toEqual(["a"])
      }).pipe(Effect.provide(stack(perModel({ a: FakeLlm.fail(error) }), Fallback.policy({ models: ["a", "b"] })))))
  }

  it.effect("a non-trigger error later in the chain stops it and is returned", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request("a")))
      expect(error).toEqual(new LlmError.BadRequest({ model: "b" }))
      expect(yield* calledModels).toEqual(["a", "b"])
    }).pipe(Effect.provide(stack(
      perModel({ a: FakeLlm.fail(unavailable), b: FakeLlm.fail(new LlmError.BadRequest({ model: "b" })) }),
      Fallback.policy({ models: ["a", "b", "c"] })
    ))))

  it.effect("`when` replaces the trigger", () =>
    Effect.gen(function* () {
      expect((yield* Effect.flip(LlmClient.complete(request("a"))))._tag).toBe("ServerError")
      expect((yield* LlmClient.complete(request("c"))).model).toBe("b")
    }).pipe(Effect.provide(stack(
      perModel({ a: FakeLlm.fail(unavailable), c: FakeLlm.fail(new LlmError.BadRequest({})) }),
      Fallback.policy({ models: ["c", "b"], when: (e) => e._tag === "BadRequest" })
    ))))

  it.effect("a request model not in the list is tried first, then the whole list", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("custom"))
      expect(response.model).toBe("b")
      expect(yield* calledModels).toEqual(["custom", "a", "b"])
    }).pipe(Effect.provide(stack(
      perModel({ custom: FakeLlm.fail(unavailable), a: FakeLlm.fail(unavailable) }),
      Fallback.policy({ models: ["a", "b"] })
    ))))

  it.effect("a request model in the middle of the list starts there (no escalation to earlier tiers)", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request("b")))
      expect(error._tag).toBe("AllModelsFailed")
      expect(yield* calledModels).toEqual(["b", "c"])
    }).pipe(Effect.provide(stack(FakeLlm.fail(unavailable), Fallback.policy({ models: ["a", "b", "c"] })))))

  it.effect("ContextTooLong skips to a model with a larger context window (from Pricing)", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("gpt-4o"))
      expect(response.model).toBe("gpt-4.1")
      // gpt-4o-mini has the same 128k window as gpt-4o: not tried; an unpriced model would be tried
      expect(yield* calledModels).toEqual(["gpt-4o", "gpt-4.1"])
    }).pipe(Effect.provide(stack(
      perModel({ "gpt-4o": FakeLlm.fail(new LlmError.ContextTooLong({ model: "gpt-4o" })) }),
      Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini", "gpt-4.1"] })
    ))))

  it.effect("ContextTooLong with an unknown window tries the next model anyway", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request("local-small"))
      expect(response.model).toBe("local-large")
    }).pipe(Effect.provide(stack(
      perModel({ "local-small": FakeLlm.fail(new LlmError.ContextTooLong({})) }),
      Fallback.policy({ models: ["local-small", "local-large"] })
    ))))

  it.effect("ContextTooLong uses the error's contextWindow when it has one", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request("x")))
      // gpt-4 (8k) and gpt-3.5-turbo (16k) are not larger than 200k: skipped, nothing left
      expect(error).toEqual(new LlmError.AllModelsFailed({
        failures: [new LlmError.ContextTooLong({ model: "x", contextWindow: 200_000 })]
      }))
      expect(yield* calledModels).toEqual(["x"])
    }).pipe(Effect.provide(stack(
      perModel({ x: FakeLlm.fail(new LlmError.ContextTooLong({ model: "x", contextWindow: 200_000 })) }),
      Fallback.policy({ models: ["x", "gpt-4", "gpt-3.5-turbo"] })
    ))))

  it.effect("QuotaExhausted skips the tiers on the same client and moves to another client", () =>
    Effect.gen(function* () {
      const local = yield* Effect.provide(LlmClient.LlmClient, FakeLlm.layer(FakeLlm.reply("local answer")))
      const client = LlmClient.decorate(
        yield* LlmClient.LlmClient,
        Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini", { model: "llama3.1:8b", client: local }] })
      )
      const response = yield* client.complete(request("gpt-4o"))
      expect([response.model, response.content]).toEqual(["llama3.1:8b", "local answer"])
      expect(yield* calledModels).toEqual(["gpt-4o"])
      const alone = LlmClient.decorate(yield* LlmClient.LlmClient, Fallback.policy({ models: ["gpt-4o", "gpt-4o-mini"] }))
      const error = yield* Effect.flip(alone.complete(request("gpt-4o")))
      expect(error._tag).toBe("AllModelsFailed")
      expect(yield* calledModels).toEqual(["gpt-4o", "gpt-4o"])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.fail(new LlmError.QuotaExhausted({}))))))

  it.effect("nested AllModelsFailed is flattened", () =>
    Effect.gen(function* () {
      const base = yield* LlmClient.LlmClient
      const inner = LlmClient.decorate(base, Fallback.policy({ models: ["p", "q"] }))
      const outer = LlmClient.decorate(base, Fallback.policy({ models: [{ model: "p", client: inner }, "r"] }))
      const error = yield* Effect.flip(outer.complete(request("p")))
      expect(error._tag).toBe("AllModelsFailed")
      expect((error as LlmError.AllModelsFailed).failures.map((f) => f.model)).toEqual(["p", "q", "r"])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.fail(unavailable)))))

  it("invalid options throw InvalidOptions listing every path", () => {
    expect(() => Fallback.policy({ models: [] })).toThrow(InvalidOptions)
    let thrown: unknown
    try {
      Fallback.policy({
        models: ["", { model: "x", client: {} as LlmClient.Service }],
        when: 5 as unknown as () => boolean
      })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(InvalidOptions)
    const paths = (thrown as InvalidOptions).issues.map((i) => i.path)
    expect(paths).toContain("models.0")
    expect(paths).toContain("models.1.client")
    expect(paths).toContain("when")
  })
})

describe("Fallback.policy: streams", () => {
  const collect = (model: string) =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const exit = yield* Effect.exit(LlmClient.stream(request(model)).pipe(
        Stream.runForEach((c) => Effect.sync(() => seen.push(`${c.model}:${c.content}`)))
      ))
      return { exit, seen }
    })

  it.effect("falls back before the first chunk", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* collect("a")
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(seen).toEqual(["b:from ", "b:b", "b:"])
      expect(yield* calledModels).toEqual(["a", "b"])
    }).pipe(Effect.provide(stack(perModel({ a: FakeLlm.fail(unavailable) }), Fallback.policy({ models: ["a", "b"] })))))

  it.effect("does not fall back after the first chunk: the error surfaces, no duplicated tokens", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* collect("a")
      expect(seen).toEqual(["a:Hel"])
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe(Option.map((e) => e._tag))).toEqual(
        Option.some("StreamTruncated")
      )
      expect(yield* calledModels).toEqual(["a"])
    }).pipe(Effect.provide(stack(perModel({ a: FakeLlm.cut(["Hel"]) }), Fallback.policy({ models: ["a", "b"] })))))

  it.effect("every stream failing before a chunk gives AllModelsFailed", () =>
    Effect.gen(function* () {
      const { exit } = yield* collect("a")
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe(Option.map((e) => e._tag))).toEqual(
        Option.some("AllModelsFailed")
      )
    }).pipe(Effect.provide(stack(FakeLlm.fail(unavailable), Fallback.policy({ models: ["a", "b"] })))))

  it.effect("a tier's own client serves its stream", () =>
    Effect.gen(function* () {
      const local = yield* Effect.provide(LlmClient.LlmClient, FakeLlm.layer(FakeLlm.reply("local")))
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, Fallback.policy({ models: ["a", { model: "l", client: local }] }))
      const chunks = yield* Stream.runCollect(client.stream(request("a")))
      expect([...chunks].map((c) => `${c.model}:${c.content}`)).toEqual(["l:local", "l:"])
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.fail(unavailable)))))
})

describe("Fallback.clientFromLayer", () => {
  it.scoped("builds a tier client from a layer in the current scope", () =>
    Effect.gen(function* () {
      const local = yield* Fallback.clientFromLayer(FakeLlm.layer(FakeLlm.reply("from the local server")))
      const response = yield* local.complete(request("llama"))
      expect(response.content).toBe("from the local server")
    }))
})
