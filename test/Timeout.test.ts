import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Cause, Chunk, Data, Duration, Effect, Exit, Fiber, Layer, Option, Ref, Schedule, Stream, TestClock } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as FakeLlm from "../src/FakeLlm.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as Retry from "../src/Retry.js"
import * as Timeout from "../src/Timeout.js"

const request = (model = "m") => new ChatRequest({ model, messages: [{ role: "user", content: "hi" }] })

const stack = (script: FakeLlm.Script, ...policies: Array<LlmClient.Policy>) =>
  LlmClient.layerWith(...policies).pipe(Layer.provideMerge(FakeLlm.layer(script)))

const failureOf = <A, E>(exit: Exit.Exit<A, E>): Option.Option<E> =>
  Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()

const timeoutError = (phase: LlmError.TimeoutPhase, after: Duration.DurationInput, model = "m") =>
  new LlmError.Timeout({ phase, after: Duration.decode(after), model })

describe("Timeout.policy on complete", () => {
  it.effect("attempt fires after exactly its duration and names phase, duration and model", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request("gpt-4o")))
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.await(fiber)
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("attempt", "2 seconds", "gpt-4o")))
    }).pipe(Effect.provide(stack(FakeLlm.delay("5 seconds", FakeLlm.reply("late")), Timeout.attempt("2 seconds")))))

  it.effect("a call within the deadline returns its answer unchanged", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber)).content).toBe("in time")
    }).pipe(Effect.provide(stack(FakeLlm.delay("1 second", FakeLlm.reply("in time")), Timeout.attempt("2 seconds")))))

  it.effect("the call's own errors pass through unchanged", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(LlmClient.complete(request()))
      expect(error).toEqual(new LlmError.ModelNotFound({}))
    }).pipe(Effect.provide(stack(FakeLlm.fail(new LlmError.ModelNotFound({})), Timeout.attempt("2 seconds")))))

  it.effect("attempt vs total: each attempt gets 3 s, the whole call 10 s including backoff waits", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.await(fiber)
      // attempt 1: 0 → 3000 (timeout), wait 1 s; attempt 2: 4000 → 7000, wait 2 s; attempt 3 at 9000; total at 10000
      expect((yield* FakeLlm.calls).map((c) => c.at)).toEqual([0, 4000, 9000])
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("total", "10 seconds")))
    }).pipe(Effect.provide(stack(
      FakeLlm.hang,
      Timeout.total("10 seconds"),
      Retry.policy({ jitter: "none", maxRetries: 10 }),
      Timeout.attempt("3 seconds")
    ))))

  it.effect("an attempt timeout is retryable: the next attempt answers", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 minute")
      expect((yield* Fiber.join(fiber)).content).toBe("second")
      expect((yield* FakeLlm.calls).map((c) => c.at)).toEqual([0, 4000])
    }).pipe(Effect.provide(stack(
      [FakeLlm.hang, FakeLlm.reply("second")],
      Retry.policy({ jitter: "none" }),
      Timeout.attempt("3 seconds")
    ))))

  it.effect("with both in one policy the shorter deadline wins and names the phase", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 minute")
      expect(failureOf(yield* Fiber.await(fiber))).toEqual(Option.some(timeoutError("total", "4 seconds")))
    }).pipe(Effect.provide(stack(FakeLlm.hang, Timeout.policy({ attempt: "8 seconds", total: "4 seconds" })))))

  it.effect("a caller's interruption is an interruption, never a Timeout", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(Option.isNone(failureOf(exit))).toBe(true)
      yield* TestClock.adjust("1 minute")
    }).pipe(Effect.provide(stack(FakeLlm.hang, Timeout.attempt("10 seconds")))))

  it.effect("a timeout interrupts the call below it (so its HTTP request aborts)", () =>
    Effect.gen(function* () {
      const aborted = yield* Ref.make(false)
      const call = Effect.never.pipe(Effect.onInterrupt(() => Ref.set(aborted, true)))
      const fiber = yield* Effect.fork(Effect.exit(Timeout.withTimeout(call, { attempt: "5 seconds", model: "x" })))
      yield* TestClock.adjust("5 seconds")
      expect(failureOf(yield* Fiber.join(fiber))).toEqual(Option.some(timeoutError("attempt", "5 seconds", "x")))
      expect(yield* Ref.get(aborted)).toBe(true)
    }))

  it.effect("withTimeout is dual; Duration.infinity switches a deadline off", () =>
    Effect.gen(function* () {
      const slow = Effect.as(Effect.sleep("1 hour"), "done")
      const a = yield* Effect.fork(Effect.exit(slow.pipe(Timeout.withTimeout({ total: "1 minute" }))))
      const b = yield* Effect.fork(Effect.exit(Timeout.withTimeout(slow, { attempt: Duration.infinity })))
      yield* TestClock.adjust("1 hour")
      expect(failureOf(yield* Fiber.join(a))).toEqual(
        Option.some(new LlmError.Timeout({ phase: "total", after: Duration.minutes(1) }))
      )
      expect(yield* Fiber.join(b)).toEqual(Exit.succeed("done"))
    }))
})

describe("Timeout.policy on streams", () => {
  const run = (model = "m") =>
    Effect.gen(function* () {
      const seen: Array<readonly [number, string]> = []
      const fiber = yield* Effect.fork(Effect.exit(LlmClient.stream(request(model)).pipe(
        Stream.runForEach((chunk) =>
          Effect.map(TestClock.currentTimeMillis, (at) => {
            seen.push([at, chunk.content])
          })
        )
      )))
      yield* TestClock.adjust("1 minute")
      return { exit: yield* Fiber.join(fiber), seen }
    })

  it.effect("firstToken fires exactly when due (not late) when the first chunk is late", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Effect.exit(Stream.runDrain(LlmClient.stream(request()))))
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const exit = yield* Fiber.join(fiber)
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("firstToken", "2 seconds")))
      expect((yield* FakeLlm.calls).length).toBe(1)
    }).pipe(Effect.provide(stack(
      FakeLlm.stream(["a", "b"], { firstChunkAfter: "5 seconds" }),
      Timeout.policy({ firstToken: "2 seconds" })
    ))))

  it.effect("firstToken does not bound later gaps", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* run()
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(seen).toEqual([[1000, "a"], [4000, "b"], [4000, ""]])
    }).pipe(Effect.provide(stack(
      FakeLlm.stream(["a", "b"], { firstChunkAfter: "1 second", interval: "3 seconds" }),
      Timeout.policy({ firstToken: "2 seconds" })
    ))))

  it.effect("idle does not fire while chunks keep coming within it", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* run()
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(seen).toEqual([[0, "a"], [1000, "b"], [2000, "c"], [2000, ""]])
    }).pipe(Effect.provide(stack(
      FakeLlm.stream(["a", "b", "c"], { interval: "1 second" }),
      Timeout.policy({ idle: "2 seconds" })
    ))))

  it.effect("idle: a stalled stream (5 s gaps) fails 2 s after its last chunk", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* run()
      expect(seen).toEqual([[0, "a"]])
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("idle", "2 seconds")))
    }).pipe(Effect.provide(stack(
      FakeLlm.stream(["a", "b"], { interval: "5 seconds" }),
      Timeout.policy({ firstToken: "1 second", idle: "2 seconds" })
    ))))

  it.effect("attempt bounds the whole stream", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* run()
      expect(seen.map(([at]) => at)).toEqual([0, 1000, 2000, 3000, 4000])
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("attempt", "4500 millis")))
    }).pipe(Effect.provide(stack(
      FakeLlm.stream(["a", "b", "c", "d", "e", "f", "g"], { interval: "1 second" }),
      Timeout.policy({ attempt: "4500 millis", idle: "2 seconds" })
    ))))

  it.effect("a stream within every deadline is unchanged", () =>
    Effect.gen(function* () {
      const { exit, seen } = yield* run()
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(seen.map(([, c]) => c).join("")).toBe("abc")
    }).pipe(Effect.provide(stack(
      FakeLlm.stream(["a", "b", "c"], { firstChunkAfter: "500 millis", interval: "1 second" }),
      Timeout.policy({ firstToken: "1 second", idle: "2 seconds", total: "1 minute" })
    ))))

  it.effect("a caller's interruption of a stream is not a Timeout", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Stream.runDrain(LlmClient.stream(request())))
      yield* TestClock.adjust("500 millis")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(Option.isNone(failureOf(exit))).toBe(true)
    }).pipe(Effect.provide(stack(FakeLlm.hang, Timeout.policy({ firstToken: "1 second", total: "5 seconds" })))))

  it.effect("pulls that bring back no element (a filtered stream) do not restart the firstToken or idle wait", () =>
    Effect.gen(function* () {
      const failedAt = <A, E>(stream: Stream.Stream<A, E>) =>
        Effect.fork(Effect.zip(Effect.exit(Stream.runDrain(stream)), TestClock.currentTimeMillis))
      const ticks = Stream.fromSchedule(Schedule.spaced("1 second")) // 0, 1, 2, … one a second
      const none = yield* failedAt(ticks.pipe(Stream.filter((n) => n > 100), Timeout.withStreamTimeout({ firstToken: "2500 millis" })))
      const one = yield* failedAt(ticks.pipe(Stream.filter((n) => n === 0), Timeout.withStreamTimeout({ idle: "2500 millis" })))
      yield* TestClock.adjust("1 minute")
      const [noneExit, noneAt] = yield* Fiber.join(none)
      expect(Option.map(failureOf(noneExit), (e) => e.phase)).toEqual(Option.some("firstToken"))
      expect(noneAt).toBe(2500)
      const [oneExit, oneAt] = yield* Fiber.join(one)
      expect(Option.map(failureOf(oneExit), (e) => e.phase)).toEqual(Option.some("idle"))
      expect(oneAt).toBe(1000 + 2500) // the only element comes at 1 s
    }))

  it.effect("idle does not count the consumer's own time between chunks", () =>
    Effect.gen(function* () {
      const { exit } = yield* Effect.gen(function* () {
        const fiber = yield* Effect.fork(Effect.exit(LlmClient.stream(request()).pipe(
          Stream.runForEach(() => Effect.sleep("3 seconds")) // a slow consumer: 3 s per chunk
        )))
        yield* TestClock.adjust("1 minute")
        return { exit: yield* Fiber.join(fiber) }
      })
      expect(Exit.isSuccess(exit)).toBe(true)
    }).pipe(Effect.provide(stack(
      FakeLlm.stream(["a", "b", "c"], { interval: "100 millis" }),
      Timeout.policy({ idle: "1 second" })
    ))))

  it.effect("withStreamTimeout is dual", () =>
    Effect.gen(function* () {
      const ticks = Stream.fromSchedule(Schedule.spaced("3 seconds")).pipe(Stream.take(3))
      const fiber = yield* Effect.fork(Effect.exit(Stream.runCollect(ticks.pipe(Timeout.withStreamTimeout({ idle: "2 seconds" })))))
      const fiber2 = yield* Effect.fork(Effect.exit(Stream.runCollect(Timeout.withStreamTimeout(ticks, { idle: "4 seconds" }))))
      yield* TestClock.adjust("1 minute")
      expect(Option.map(failureOf(yield* Fiber.join(fiber)), (e) => e.phase)).toEqual(Option.some("idle"))
      expect(Exit.map(yield* Fiber.join(fiber2), Chunk.size)).toEqual(Exit.succeed(3))
    }))
})

describe("Timeout options", () => {
  it("no deadline, zero or negative or unparseable durations and misspelt keys are rejected, every path listed", () => {
    expect(() => Timeout.policy({})).toThrow(/at least one of attempt, total, firstToken, idle/)
    let thrown: unknown
    try {
      Timeout.policy({ attempt: 0, total: "soon" as Duration.DurationInput, idle: "0 seconds", firstToken: "1 second" })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(InvalidOptions)
    expect((thrown as InvalidOptions).issues.map((i) => i.path).sort()).toEqual(["attempt", "idle", "total"])
    expect(() => Timeout.policy({ atempt: "1 second" } as Timeout.Options)).toThrow(/atempt/)
    expect(() => Timeout.withTimeout({ attempt: -1 })).toThrow(InvalidOptions)
  })

  it("`model` is a combinator option: the policy names the request's model and rejects it", () => {
    expect(() => Timeout.policy({ attempt: "1 second", model: "x" } as Timeout.Options)).toThrow(/model/)
    expect(() => Timeout.withTimeout({ attempt: "1 second", model: "x" })).not.toThrow()
    expect(() => Timeout.withStreamTimeout({ idle: "1 second", model: "x" })).not.toThrow()
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Any error type: a user's own database error, which is not an LlmError.

class DbFailure extends Data.TaggedError("DbFailure")<{ code: string }> {}

describe("Timeout.withTimeout over a user's effect", () => {
  const query = (after: Duration.DurationInput, outcome: Effect.Effect<string, DbFailure>) =>
    Effect.zipRight(Effect.sleep(after), outcome)

  it.effect("fires after exactly its duration, interrupting the user's effect", () =>
    Effect.gen(function* () {
      const stopped = yield* Ref.make(false)
      const slow = query("5 seconds", Effect.succeed("rows")).pipe(Effect.onInterrupt(() => Ref.set(stopped, true)))
      const fiber = yield* Effect.fork(Effect.exit(slow.pipe(Timeout.withTimeout({ attempt: "2 seconds" }))))
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(failureOf(yield* Fiber.join(fiber))).toEqual(
        Option.some(new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(2) }))
      )
      expect(yield* Ref.get(stopped)).toBe(true)
    }))

  it.effect("within the deadline the user's value and the user's own errors pass through unchanged", () =>
    Effect.gen(function* () {
      const ok = yield* Effect.fork(Timeout.withTimeout(query("1 second", Effect.succeed("rows")), { total: "2 seconds" }))
      const failed = yield* Effect.fork(Effect.flip(
        query("1 second", Effect.fail(new DbFailure({ code: "23505" }))).pipe(Timeout.withTimeout({ total: "2 seconds" }))
      ))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(ok)).toBe("rows")
      expect(yield* Fiber.join(failed)).toEqual(new DbFailure({ code: "23505" }))
    }))

  it.effect("a user's stream: firstToken and idle bound its waits", () =>
    Effect.gen(function* () {
      const rows = Stream.fromSchedule(Schedule.spaced("3 seconds")).pipe(
        Stream.take(3),
        Stream.mapEffect((n) => n < 2 ? Effect.succeed(n) : Effect.fail(new DbFailure({ code: "57014" })))
      )
      const fiber = yield* Effect.fork(Effect.exit(Stream.runCollect(rows.pipe(Timeout.withStreamTimeout({ firstToken: "2 seconds" })))))
      yield* TestClock.adjust("2 seconds")
      expect(failureOf(yield* Fiber.join(fiber))).toEqual(
        Option.some(new LlmError.Timeout({ phase: "firstToken", after: Duration.seconds(2) }))
      )
      const own = yield* Effect.fork(Effect.exit(Stream.runCollect(rows.pipe(Timeout.withStreamTimeout({ idle: "4 seconds" })))))
      yield* TestClock.adjust("1 minute")
      expect(failureOf(yield* Fiber.join(own))).toEqual(Option.some(new DbFailure({ code: "57014" })))
    }))

  it("adds exactly Timeout to E, whatever E is; A and R are unchanged", () => {
    const call = Effect.fail(new DbFailure({ code: "x" })) as Effect.Effect<number, DbFailure>
    expectTypeOf(call.pipe(Timeout.withTimeout({ attempt: "1 second" }))).toEqualTypeOf<
      Effect.Effect<number, DbFailure | LlmError.Timeout>
    >()
    expectTypeOf(Timeout.withTimeout(call, { total: "1 second" })).toEqualTypeOf<
      Effect.Effect<number, DbFailure | LlmError.Timeout>
    >()
    expectTypeOf(Effect.succeed("x").pipe(Timeout.withTimeout({ attempt: "1 second" }))).toEqualTypeOf<
      Effect.Effect<string, LlmError.Timeout>
    >()
    const stream = Stream.fail(new DbFailure({ code: "x" })) as Stream.Stream<number, DbFailure>
    expectTypeOf(stream.pipe(Timeout.withStreamTimeout({ idle: "1 second" }))).toEqualTypeOf<
      Stream.Stream<number, DbFailure | LlmError.Timeout>
    >()
  })

  it.effect("composed with Retry over the user's error: a hung attempt times out and the next one answers", () =>
    Effect.gen(function* () {
      const attempts = yield* Ref.make(0)
      const call = Effect.flatMap(Ref.getAndUpdate(attempts, (n) => n + 1), (n) =>
        n === 0 ? Effect.never : Effect.succeed("rows")) as Effect.Effect<string, DbFailure>
      const retried = call.pipe(
        Timeout.withTimeout({ attempt: "3 seconds" }),
        Retry.withRetry({ retryOn: (e) => e._tag === "Timeout", jitter: "none" })
      )
      expectTypeOf(retried).toEqualTypeOf<Effect.Effect<string, DbFailure | LlmError.Timeout>>()
      const fiber = yield* Effect.fork(retried)
      yield* TestClock.adjust("4 seconds") // 3 s attempt + 1 s backoff
      expect(yield* Fiber.join(fiber)).toBe("rows")
      expect(yield* Ref.get(attempts)).toBe(2)
    }))
})

describe("a deadline handed down to the steps below", () => {
  // A provider that enforces the current deadline itself (as the OpenAI adapter does): its request never answers,
  // and it records whether its signal was aborted and how often it was called.
  const enforcing = (calls: { count: number; aborted: number }, enforces = true): LlmClient.Service => ({
    complete: () =>
      LlmClient.tryPromise({
        try: (signal) => {
          calls.count++
          signal.addEventListener("abort", () => calls.aborted++)
          return new Promise<never>(() => {})
        },
        catch: () => new LlmError.ConnectionError({})
      }),
    stream: () => Stream.empty,
    ...(enforces ? { enforces: { deadline: true } } : {})
  })
  const failing = (calls: { count: number }): LlmClient.Service => ({
    complete: (req) => Effect.suspend(() => {
      calls.count++
      return Effect.fail(new LlmError.ServerError({ status: 503, model: req.model }))
    }),
    stream: () => Stream.empty
  })

  const settleAt = <A, E>(effect: Effect.Effect<A, E>, before: Duration.DurationInput, after: Duration.DurationInput) =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(effect)
      yield* TestClock.adjust(before)
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust(after)
      return yield* Fiber.await(fiber)
    })

  it.effect("Timeout → Retry → CircuitBreaker (memory) → an enforcing provider: the provider aborts at the deadline", () =>
    Effect.gen(function* () {
      const calls = { count: 0, aborted: 0 }
      const breaker = yield* CircuitBreaker.policy({ per: "model" })
      expect(breaker.keepsDeadline).toBe(true)
      const client = LlmClient.decorate(enforcing(calls), Timeout.attempt("1 second"), Retry.policy({ maxRetries: 0 }), breaker)
      expect(client.enforces?.deadline).toBe(true)
      const exit = yield* settleAt(client.complete(request()), "999 millis", "1 millis")
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("attempt", "1 second")))
      expect(calls).toEqual({ count: 1, aborted: 1 })
    }).pipe(Effect.provide(CircuitBreaker.layerStoreMemory)))

  it.effect("a provider that enforces nothing is bounded by the provider step at the same instant", () =>
    Effect.gen(function* () {
      const calls = { count: 0, aborted: 0 }
      const client = LlmClient.decorate(enforcing(calls, false), Timeout.attempt("1 second"), Retry.policy({ maxRetries: 0 }))
      const exit = yield* settleAt(client.complete(request()), "999 millis", "1 millis")
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("attempt", "1 second")))
      expect(calls.count).toBe(1)
    }))

  it.effect("a policy of the user's own in between (it waits on its own): Timeout still fires at its deadline", () =>
    Effect.gen(function* () {
      const calls = { count: 0, aborted: 0 }
      const slowStart = LlmClient.policy({
        name: "slow-start",
        complete: (next) => (req) => Effect.zipRight(Effect.sleep("5 seconds"), next(req))
      })
      const client = LlmClient.decorate(enforcing(calls), Timeout.attempt("1 second"), slowStart)
      expect(client.enforces).toBeUndefined()
      const exit = yield* settleAt(client.complete(request()), "999 millis", "1 millis")
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("attempt", "1 second")))
      expect(calls.count).toBe(0)
    }))

  it.effect("Retry's wait before a retry ends at a total deadline above it, with that Timeout", () =>
    Effect.gen(function* () {
      const calls = { count: 0 }
      const client = LlmClient.decorate(
        failing(calls),
        Timeout.total("1 second"),
        Retry.policy({ maxRetries: 3, baseDelay: "5 seconds", jitter: "none" })
      )
      const exit = yield* settleAt(client.complete(request()), "999 millis", "1 millis")
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("total", "1 second")))
      expect(calls.count).toBe(1)
    }))

  it.effect("nested deadlines: the earlier one wins and names its phase; a later attempt gets what is left", () =>
    Effect.gen(function* () {
      const calls = { count: 0, aborted: 0 }
      const client = LlmClient.decorate(
        enforcing(calls),
        Timeout.total("3 seconds"),
        Retry.policy({ maxRetries: 5, baseDelay: "100 millis", jitter: "none" }),
        Timeout.attempt("1 second")
      )
      // attempts time out at 1 s, 2.1 s; the third starts at 2.3 s and is cut by the total deadline at 3 s
      const exit = yield* settleAt(client.complete(request()), "2999 millis", "1 millis")
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("total", "3 seconds")))
      expect(calls).toEqual({ count: 3, aborted: 3 })
    }))

  it.effect("after a call the deadline is gone: a later call on the same fiber without a Timeout is not bounded", () =>
    Effect.gen(function* () {
      const fast = yield* FakeLlm.make(FakeLlm.reply("ok"))
      const timed = LlmClient.decorate(fast.client, Timeout.attempt("1 second"))
      expect((yield* timed.complete(request())).content).toBe("ok")
      const plain = (yield* FakeLlm.make(FakeLlm.delay("5 seconds", FakeLlm.reply("late but fine")))).client
      const exit = yield* settleAt(plain.complete(request()), "4999 millis", "1 millis")
      expect(Exit.isSuccess(exit) && exit.value.content).toBe("late but fine")
    }))

  it.effect("a breaker over a store without synchronous steps does not keep the deadline; Timeout still fires", () =>
    Effect.gen(function* () {
      const calls = { count: 0, aborted: 0 }
      const store = yield* CircuitBreaker.makeStoreMemory
      const breaker = yield* Effect.provideService(
        CircuitBreaker.policy({ per: "model" }),
        CircuitBreaker.CircuitBreakerStore,
        { ...store, sync: undefined }
      )
      expect(breaker.keepsDeadline).toBe(false)
      const client = LlmClient.decorate(enforcing(calls), Timeout.attempt("1 second"), breaker)
      const exit = yield* settleAt(client.complete(request()), "999 millis", "1 millis")
      expect(failureOf(exit)).toEqual(Option.some(timeoutError("attempt", "1 second")))
      expect(calls).toEqual({ count: 1, aborted: 1 })
    }))
})
