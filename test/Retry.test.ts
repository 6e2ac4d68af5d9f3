import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import {
  Cause,
  Chunk,
  Context,
  Data,
  Duration,
  Effect,
  Exit,
  Fiber,
  Layer,
  Metric,
  Option,
  Random,
  Ref,
  Schedule,
  Stream,
  TestClock
} from "effect"
import * as FakeLlm from "../src/FakeLlm.js"
import { InvalidOptions } from "../src/InvalidOptions.js"
import { ChatRequest } from "../src/Llm.js"
import * as LlmClient from "../src/LlmClient.js"
import * as LlmError from "../src/LlmError.js"
import * as LlmMetrics from "../src/LlmMetrics.js"
import * as Retry from "../src/Retry.js"

const request = (model = "m") => new ChatRequest({ model, messages: [{ role: "user", content: "hi" }] })
const unavailable = (retryAfter?: Duration.DurationInput) =>
  new LlmError.ServerError({ status: 503, retryAfter: retryAfter === undefined ? undefined : Duration.decode(retryAfter) })

const stack = (script: FakeLlm.Script, ...policies: Array<LlmClient.Policy>) =>
  LlmClient.layerWith(...policies).pipe(Layer.provideMerge(FakeLlm.layer(script)))

/** Runs one call to the end on the TestClock and returns its exit and the times the provider was called. */
const timed = (model = "m", advance: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(LlmClient.complete(request(model)))
    yield* TestClock.adjust(advance)
    const exit = yield* Fiber.await(fiber)
    const calls = yield* FakeLlm.calls
    return { exit, at: calls.map((c) => c.at) }
  })

/** The InvalidOptions an Exit died with, if it did. */
const diedWith = (exit: Exit.Exit<unknown, unknown>): InvalidOptions | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const defect = Cause.dieOption(exit.cause)
  return Option.isSome(defect) && defect.value instanceof InvalidOptions ? defect.value : undefined
}

const retriesOf = (model: string, error: string) =>
  Effect.map(
    Metric.value(LlmMetrics.retries.pipe(Metric.tagged("model", model), Metric.tagged("error", error))),
    (state) => state.count
  )

describe("Retry.policy: call times on the TestClock", () => {
  it.effect("jitter none: 1 s, 2 s, 4 s → calls at 0, 1000, 3000, 7000 and the last error", () =>
    Effect.gen(function* () {
      const { at, exit } = yield* timed()
      expect(at).toEqual([0, 1000, 3000, 7000])
      expect(exit).toEqual(Exit.fail(new LlmError.ServerError({ status: 504 })))
    }).pipe(Effect.provide(stack(
      ({ call }) => FakeLlm.fail(new LlmError.ServerError({ status: call === 4 ? 504 : 503 })),
      Retry.policy({ jitter: "none" })
    ))))

  it.effect("jitter full with Random pinned at 0.5: half of 1 s, 2 s, 4 s", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 500, 1500, 3500])
    }).pipe(Effect.withRandomFixed([0.5]), Effect.provide(stack(FakeLlm.fail(unavailable()), Retry.policy()))))

  it.effect("jitter full with Random pinned at 0 and 0.999: from no wait to almost the whole delay", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 0, 1998, 1998])
    }).pipe(Effect.withRandomFixed([0, 0.999]), Effect.provide(stack(FakeLlm.fail(unavailable()), Retry.policy()))))

  it.effect("jitter equal with Random pinned at 0.5: three quarters of 1 s, 2 s, 4 s", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 750, 2250, 5250])
    }).pipe(
      Effect.withRandomFixed([0.5]),
      Effect.provide(stack(FakeLlm.fail(unavailable()), Retry.policy({ jitter: "equal" })))
    ))

  it.effect("jitter decorrelated with Random pinned at 0.5: 2000, 3500, 5750 (U[base, 3 × previous])", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 2000, 5500, 11250])
    }).pipe(
      Effect.withRandomFixed([0.5]),
      Effect.provide(stack(FakeLlm.fail(unavailable()), Retry.policy({ jitter: "decorrelated" })))
    ))

  it.effect("maxDelay caps the computed delay; factor shapes it", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 1000, 6000, 11000])
    }).pipe(Effect.provide(stack(
      FakeLlm.fail(unavailable()),
      Retry.policy({ jitter: "none", factor: 10, maxDelay: "5 seconds" })
    ))))
})

describe("Retry.policy: how many calls", () => {
  it.effect("maxRetries 3 → 4 calls at most", () =>
    Effect.gen(function* () {
      const { at, exit } = yield* timed()
      expect(at).toHaveLength(4)
      expect(Exit.isFailure(exit)).toBe(true)
    }).pipe(Effect.provide(stack(FakeLlm.fail(unavailable()), Retry.policy({ maxRetries: 3 })))))

  it.effect("maxRetries 0 → 1 call", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0])
    }).pipe(Effect.provide(stack(FakeLlm.fail(unavailable()), Retry.policy({ maxRetries: 0 })))))

  it.effect("succeeds on the third call and returns that answer", () =>
    Effect.gen(function* () {
      const { at, exit } = yield* timed()
      expect(at).toEqual([0, 1000, 3000])
      expect(Exit.map(exit, (r) => r.content)).toEqual(Exit.succeed("third time lucky"))
    }).pipe(Effect.provide(stack(
      [FakeLlm.fail(unavailable()), FakeLlm.fail(new LlmError.ConnectionError({})), FakeLlm.reply("third time lucky")],
      Retry.policy({ jitter: "none" })
    ))))

  const nonRetryable: ReadonlyArray<LlmError.LlmError> = [
    new LlmError.BadRequest({}),
    new LlmError.AuthError({ status: 401 }),
    new LlmError.QuotaExhausted({}),
    new LlmError.ContextTooLong({}),
    new LlmError.ContentFiltered({}),
    new LlmError.ModelNotFound({}),
    new LlmError.CircuitOpen({ key: "m", retryAfter: Duration.seconds(1) }),
    new LlmError.BulkheadRejected({ key: "m", maxConcurrent: 1, maxQueue: 0 }),
    new LlmError.BudgetExceeded({ scope: "user", requested: 10, remaining: 0 })
  ]
  for (const error of nonRetryable) {
    it.effect(`${error._tag} is not retried: 1 call`, () =>
      Effect.gen(function* () {
        const { at, exit } = yield* timed()
        expect(at).toEqual([0])
        expect(exit).toEqual(Exit.fail(error))
      }).pipe(Effect.provide(stack(FakeLlm.fail(error), Retry.policy()))))
  }

  it.effect("retryOn chooses what is retried and sees every error", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const layer = stack(
        [FakeLlm.fail(new LlmError.ModelNotFound({})), FakeLlm.fail(unavailable()), FakeLlm.reply("ok")],
        Retry.policy({
          jitter: "none",
          retryOn: (e) => {
            seen.push(e._tag)
            return e._tag === "ModelNotFound"
          }
        })
      )
      const { at, exit } = yield* timed().pipe(Effect.provide(layer))
      expect(at).toEqual([0, 1000])
      expect(Exit.isFailure(exit)).toBe(true)
      expect(seen).toEqual(["ModelNotFound", "ServerError"])
    }))
})

describe("Retry.policy: Retry-After", () => {
  it.effect("RateLimited.retryAfter (5 s) beats a shorter computed delay (≤ 1 s)", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 5000])
    }).pipe(Effect.provide(stack(
      [FakeLlm.fail(new LlmError.RateLimited({ retryAfter: Duration.seconds(5) })), FakeLlm.reply("ok")],
      Retry.policy()
    ))))

  it.effect("ServerError.retryAfter (3 s) beats a shorter computed delay", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 3000])
    }).pipe(Effect.provide(stack([FakeLlm.fail(unavailable("3 seconds")), FakeLlm.reply("ok")], Retry.policy()))))

  it.effect("a Retry-After shorter than the computed delay does not shorten it", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 2000])
    }).pipe(Effect.provide(stack(
      [FakeLlm.fail(unavailable("100 millis")), FakeLlm.reply("ok")],
      Retry.policy({ jitter: "none", baseDelay: "2 seconds" })
    ))))

  it.effect("a Retry-After beyond maxDelay is waited in full", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 45_000])
    }).pipe(Effect.provide(stack(
      [FakeLlm.fail(new LlmError.RateLimited({ retryAfter: Duration.seconds(45) })), FakeLlm.reply("ok")],
      Retry.policy({ maxDelay: "10 seconds" })
    ))))

  it.effect("a Retry-After over maxRetryAfter returns the error at once (no clock movement needed)", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      const exit = yield* Fiber.await(fiber) // the TestClock never moves
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toEqual(
        Option.some(new LlmError.RateLimited({ retryAfter: Duration.seconds(90) }))
      )
      expect((yield* FakeLlm.calls).length).toBe(1)
    }).pipe(Effect.provide(stack(
      FakeLlm.fail(new LlmError.RateLimited({ retryAfter: Duration.seconds(90) })),
      Retry.policy({ maxRetryAfter: "60 seconds" })
    ))))

  it.effect("honorRetryAfter: false uses the computed delay and never gives up early", () =>
    Effect.gen(function* () {
      const { at } = yield* timed()
      expect(at).toEqual([0, 1000])
    }).pipe(Effect.provide(stack(
      [FakeLlm.fail(new LlmError.RateLimited({ retryAfter: Duration.minutes(5) })), FakeLlm.reply("ok")],
      Retry.policy({ jitter: "none", honorRetryAfter: false })
    ))))
})

describe("Retry budget", () => {
  const outage = (budget: boolean, logicalCalls: number) =>
    Effect.gen(function* () {
      const policy = budget ? Retry.policy({ budget: yield* Retry.makeBudget() }) : Retry.policy()
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, policy)
      const fibers = yield* Effect.forEach(
        Array.from({ length: logicalCalls }, (_, i) => i),
        (i) => Effect.fork(Effect.either(client.complete(request(`m${i}`)))),
        { concurrency: "unbounded" }
      )
      yield* TestClock.adjust("1 minute")
      const outcomes = yield* Effect.forEach(fibers, Fiber.join)
      expect(outcomes.every((o) => o._tag === "Left")).toBe(true)
      return (yield* FakeLlm.calls).length
    }).pipe(Effect.provide(FakeLlm.layer(FakeLlm.fail(unavailable()))))

  it.effect("1000 calls against a dead provider: at most 1.25 calls each with the default budget", () =>
    Effect.gen(function* () {
      const sent = yield* outage(true, 1000)
      expect(sent / 1000).toBeLessThanOrEqual(1.25)
      expect(sent).toBe(1200) // retries: 0.2 × the 1000 calls of the window
    }))

  it.effect("a sustained outage (100 calls a second for 12 s): still at most 1.25 calls each as the window slides", () =>
    Effect.gen(function* () {
      const client = LlmClient.decorate(yield* LlmClient.LlmClient, Retry.policy({ budget: yield* Retry.makeBudget() }))
      const fibers: Array<Fiber.RuntimeFiber<unknown>> = []
      for (let second = 0; second < 12; second++) {
        for (let i = 0; i < 100; i++) fibers.push(yield* Effect.fork(Effect.either(client.complete(request(`s${second}-${i}`)))))
        yield* TestClock.adjust("1 second")
      }
      yield* TestClock.adjust("1 minute")
      yield* Effect.forEach(fibers, Fiber.join, { discard: true })
      const sent = (yield* FakeLlm.calls).length
      expect(sent / 1200).toBeLessThanOrEqual(1.25)
      expect(sent / 1200).toBeGreaterThan(1.1) // the budget is spent, not stuck at zero
    }).pipe(Effect.withRandom(Random.make("sustained")), Effect.provide(FakeLlm.layer(FakeLlm.fail(unavailable())))))

  it.effect("without a budget every call of an outage is sent 4 times", () =>
    Effect.gen(function* () {
      // fewer calls: each backoff wait is one TestClock step, and 3000 of them take seconds to simulate
      const sent = yield* outage(false, 50)
      expect(sent / 50).toBe(4)
    }))

  it.effect("the allowance is max(ratio × calls, minPerSecond × window seconds), not their sum", () =>
    Effect.gen(function* () {
      const budget = yield* Retry.makeBudget({ ratio: 0.2, window: "10 seconds", minPerSecond: 1 })
      const spend = Effect.gen(function* () {
        let granted = 0
        while (yield* budget.tryWithdraw) granted++
        return granted
      })
      // 10 calls: the floor (1 / s × 10 s = 10) is larger than 0.2 × 10 = 2, and is not added to it
      yield* Effect.repeatN(budget.deposit, 9)
      expect(yield* spend).toBe(10)
      expect(yield* budget.snapshot).toEqual({ requests: 10, retries: 10, allowance: 10 })
      // 100 calls: 0.2 × 100 = 20 is larger than the floor; a sum would allow 30
      yield* Effect.repeatN(budget.deposit, 89)
      expect(yield* spend).toBe(10)
      expect(yield* budget.snapshot).toEqual({ requests: 100, retries: 20, allowance: 20 })
    }))

  it.effect("Retry.layer is the RetryBudget service's layer", () =>
    Effect.gen(function* () {
      const budget = yield* Retry.RetryBudget
      expect(yield* budget.snapshot).toEqual({ requests: 0, retries: 0, allowance: 50 })
    }).pipe(Effect.provide(Retry.layer({ window: "5 seconds" }))))

  it.effect("low traffic can still retry (minPerSecond floor), and the window slides", () =>
    Effect.gen(function* () {
      const budget = yield* Retry.makeBudget({ ratio: 0, window: "10 seconds", minPerSecond: 0.2 })
      // floor = 0.2 / s × 10 s = 2 retries per window
      expect(yield* budget.tryWithdraw).toBe(true)
      expect(yield* budget.tryWithdraw).toBe(true)
      expect(yield* budget.tryWithdraw).toBe(false)
      yield* TestClock.adjust("11 seconds")
      expect(yield* budget.tryWithdraw).toBe(true)
    }))

  it.effect("the budget is shared through the RetryBudget service", () =>
    Effect.gen(function* () {
      // ratio 0 and a floor of 0.1 / s × 10 s: one retry per window
      const first = yield* timed("m", "2 seconds")
      expect(first.at).toEqual([0, 1000])
      expect(Exit.isSuccess(first.exit)).toBe(true)
      const second = yield* timed("m", "2 seconds")
      expect(second.at).toEqual([0, 1000, 2000]) // the second call gets no retry: the window's one is spent
      expect(Exit.isFailure(second.exit)).toBe(true)
      const snapshot = yield* Effect.flatMap(Retry.RetryBudget, (b) => b.snapshot)
      expect(snapshot).toEqual({ requests: 2, retries: 1, allowance: 1 })
    }).pipe(Effect.provide(
      LlmClient.layerWith(Retry.policyWithBudget({ jitter: "none" })).pipe(
        Layer.provideMerge(FakeLlm.layer([FakeLlm.fail(unavailable()), FakeLlm.reply("ok"), FakeLlm.fail(unavailable())])),
        Layer.provideMerge(Retry.layerBudget({ ratio: 0, minPerSecond: 0.1 }))
      )
    )))

  it.effect("invalid budget options fail with every path listed", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Retry.makeBudget({ ratio: -1, window: "0 seconds", minPerSecond: Number.NaN }))
      expect(error).toBeInstanceOf(InvalidOptions)
      expect(error.issues.map((i) => i.path).sort()).toEqual(["minPerSecond", "ratio", "window"])
    }))
})

describe("Retry: interruption and defects", () => {
  it.effect("an interruption during the backoff stops at once: no further call", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 second") // inside the 10 s backoff
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* TestClock.adjust("1 minute")
      expect((yield* FakeLlm.calls).length).toBe(1)
    }).pipe(Effect.provide(stack(FakeLlm.fail(unavailable()), Retry.policy({ jitter: "none", baseDelay: "10 seconds" })))))

  it.effect("an interruption during a call is not retried", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(LlmClient.complete(request()))
      yield* TestClock.adjust("1 second")
      yield* Fiber.interrupt(fiber)
      yield* TestClock.adjust("1 minute")
      expect((yield* FakeLlm.calls).length).toBe(1)
    }).pipe(Effect.provide(stack(FakeLlm.hang, Retry.policy()))))

  it.effect("defects and self-interruption are never retried", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const dying = Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.die("boom"))
      const exit = yield* Effect.exit(dying.pipe(Retry.withRetry({ jitter: "none" })))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      const interrupting = Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.interrupt)
      const fiber = yield* Effect.fork(interrupting.pipe(Retry.withRetry({ jitter: "none" })))
      yield* TestClock.adjust("1 minute")
      expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
      expect(yield* Ref.get(runs)).toBe(2)
    }))
})

describe("Retry: telemetry and callbacks", () => {
  it.effect("each retry is counted in llm_retries_total by model and error", () =>
    Effect.gen(function* () {
      const before = yield* retriesOf("telemetry-model", "ServerError")
      yield* timed("telemetry-model")
      expect((yield* retriesOf("telemetry-model", "ServerError")) - before).toBe(2)
    }).pipe(Effect.provide(stack(
      [FakeLlm.fail(unavailable()), FakeLlm.fail(unavailable()), FakeLlm.reply("ok")],
      Retry.policy({ jitter: "none" })
    ))))

  it.effect("onRetry sees the retry number, error and delay; not called without a retry", () =>
    Effect.gen(function* () {
      const events: Array<string> = []
      const onRetry = (e: Retry.RetryEvent) => {
        events.push(`${e.retry}:${e.error._tag}:${Duration.toMillis(e.delay)}:${e.model}`)
      }
      const layer = stack(
        [FakeLlm.reply("first"), FakeLlm.fail(unavailable()), FakeLlm.fail(new LlmError.Timeout({ phase: "attempt", after: Duration.seconds(1) })), FakeLlm.reply("ok")],
        Retry.policy({ jitter: "none", onRetry })
      )
      yield* Effect.gen(function* () {
        yield* LlmClient.complete(request())
        expect(events).toEqual([])
        const fiber = yield* Effect.fork(LlmClient.complete(request()))
        yield* TestClock.adjust("1 minute")
        yield* Fiber.join(fiber)
      }).pipe(Effect.provide(layer))
      expect(events).toEqual(["1:ServerError:1000:m", "2:Timeout:2000:m"])
    }))

  it.effect("an Effect returned by onRetry is run", () =>
    Effect.gen(function* () {
      const count = yield* Ref.make(0)
      const layer = stack(
        [FakeLlm.fail(unavailable()), FakeLlm.reply("ok")],
        Retry.policy({ jitter: "none", onRetry: () => Ref.update(count, (n) => n + 1) })
      )
      yield* timed().pipe(Effect.provide(layer))
      expect(yield* Ref.get(count)).toBe(1)
    }))

  it.effect("the fast path draws no random number on a first-time success", () =>
    Effect.gen(function* () {
      const response = yield* LlmClient.complete(request())
      expect(response.content).toBe("ok")
    }).pipe(
      Effect.withRandom({ ...Random.make(1), next: Effect.die("Random was used") } as Random.Random),
      Effect.provide(stack(FakeLlm.reply("ok"), Retry.policy()))
    ))
})

describe("Retry: streams", () => {
  const collect = (model = "m") =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(Effect.exit(Stream.runCollect(LlmClient.stream(request(model)))))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.join(fiber)
      return { exit: Exit.map(exit, (c) => Chunk.toReadonlyArray(c).map((x) => x.content).join("")), calls: (yield* FakeLlm.calls).map((c) => c.at) }
    })

  it.effect("a stream failing before its first chunk is retried", () =>
    Effect.gen(function* () {
      const { calls, exit } = yield* collect()
      expect(calls).toEqual([0, 1000])
      expect(exit).toEqual(Exit.succeed("Hello world"))
    }).pipe(Effect.provide(stack(
      [FakeLlm.fail(unavailable()), FakeLlm.stream(["Hello", " world"], { interval: "10 millis" })],
      Retry.policy({ jitter: "none" })
    ))))

  it.effect("a stream cut after its first chunk is not retried (no duplicated tokens)", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Effect.exit(LlmClient.stream(request()).pipe(
        Stream.runForEach((c) => Effect.sync(() => seen.push(c.content)))
      )))
      yield* TestClock.adjust("1 minute")
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause).pipe(Option.map((e) => e._tag))).toEqual(
        Option.some("StreamTruncated")
      )
      expect(seen).toEqual(["partial ", "answer"])
      expect((yield* FakeLlm.calls).length).toBe(1)
    }).pipe(Effect.provide(stack(
      [FakeLlm.cut(["partial ", "answer"]), FakeLlm.reply("full answer")],
      Retry.policy({ jitter: "none" })
    ))))

  it.effect("withStreamRetry is dual and gives up after maxRetries", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const failing = Stream.fromEffect(
        Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.fail(unavailable()))
      )
      const fiber = yield* Effect.fork(Effect.exit(Stream.runDrain(Retry.withStreamRetry(failing, { maxRetries: 2 }))))
      yield* TestClock.adjust("1 minute")
      expect(Exit.isFailure(yield* Fiber.join(fiber))).toBe(true)
      expect(yield* Ref.get(runs)).toBe(3)
    }))
})

describe("Retry: combinator, schedule and validation", () => {
  it.effect("withRetry is dual: data-first and pipeable give the same calls", () =>
    Effect.gen(function* () {
      const runs = yield* Ref.make(0)
      const call = Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.fail(unavailable()))
      const a = yield* Effect.fork(Effect.exit(Retry.withRetry(call, { maxRetries: 1 })))
      const b = yield* Effect.fork(Effect.exit(call.pipe(Retry.withRetry({ maxRetries: 2 }))))
      const c = yield* Effect.fork(Effect.exit(call.pipe(Retry.withRetry())))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(a)
      yield* Fiber.join(b)
      yield* Fiber.join(c)
      expect(yield* Ref.get(runs)).toBe(2 + 3 + 4)
    }))

  it.effect("Retry.schedule plugs into Effect.retry with the same delays", () =>
    Effect.gen(function* () {
      const times: Array<number> = []
      const call = Effect.flatMap(TestClock.currentTimeMillis, (now) => {
        times.push(now)
        return Effect.fail(unavailable())
      })
      const fiber = yield* Effect.fork(Effect.exit(Effect.retry(call, Retry.schedule({ jitter: "none", maxRetries: 2 }))))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(fiber)
      expect(times).toEqual([0, 1000, 3000])
    }))

  it("invalid options throw InvalidOptions listing every path", () => {
    let thrown: unknown
    try {
      Retry.policy({
        maxRetries: -1,
        baseDelay: "soon" as Duration.DurationInput,
        factor: 0.5,
        jitter: "random" as Retry.Jitter,
        honorRetryAfter: "yes" as unknown as boolean,
        maxRetryAfter: "forever" as Duration.DurationInput
      })
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(InvalidOptions)
    const issues = (thrown as InvalidOptions).issues.map((i) => i.path).sort()
    expect(issues).toEqual(["baseDelay", "factor", "honorRetryAfter", "jitter", "maxRetries", "maxRetryAfter"])
    expect((thrown as InvalidOptions).message).toContain("Retry options are invalid")
  })

  it("maxDelay below baseDelay, a misspelt option and a non-budget are rejected", () => {
    expect(() => Retry.policy({ baseDelay: "10 seconds", maxDelay: "1 second" })).toThrow(/maxDelay/)
    expect(() => Retry.policy({ maxRetry: 3 } as Retry.Options)).toThrow(/maxRetry/)
    expect(() => Retry.policy({ budget: {} as Retry.Budget })).toThrow(/budget/)
    expect(() => Retry.policy({ maxDelay: Duration.infinity })).toThrow(/maxDelay/)
    // the combinators never throw: the Effect (or Stream) they return dies with the InvalidOptions
    const retried = Effect.succeed(1).pipe(Retry.withRetry({ maxRetries: -1 }))
    expect(diedWith(Effect.runSyncExit(retried))?.issues.map((i) => i.path)).toEqual(["maxRetries"])
    const dataFirst = Retry.withRetry(Effect.succeed(1), { maxRetries: -1 })
    expect(diedWith(Effect.runSyncExit(dataFirst))?.issues.map((i) => i.path)).toEqual(["maxRetries"])
    const stream = Stream.make(1).pipe(Retry.withStreamRetry({ factor: 0 }))
    expect(diedWith(Effect.runSyncExit(Stream.runDrain(stream)))?.issues.map((i) => i.path)).toEqual(["factor"])
    expect(() => Retry.schedule({ jitter: "some" as Retry.Jitter })).toThrow(InvalidOptions)
  })

  it.effect("policyWithBudget fails (rather than throws) on bad options", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(Retry.policyWithBudget({ maxRetries: 1.5 }))
      expect(error.issues.map((i) => i.path)).toEqual(["maxRetries"])
    }).pipe(Effect.provide(Retry.layerBudget())))

  it.effect("schedule and policyWithBudget report a budget option instead of ignoring it", () =>
    Effect.gen(function* () {
      const budget = yield* Retry.makeBudget()
      const options = { maxRetries: 1, budget } as Omit<Retry.Options, "budget">
      expect(() => Retry.schedule(options)).toThrow(/budget: Not accepted here/)
      const error = yield* Effect.flip(Retry.policyWithBudget(options))
      expect(error).toBeInstanceOf(InvalidOptions)
      expect(error.issues.map((i) => i.path)).toEqual(["budget"])
    }).pipe(Effect.provide(Retry.layerBudget())))
})

// ---------------------------------------------------------------------------------------------------------------
// Any error type: a user's own HTTP error, which is not an LlmError.

class HttpFailure extends Data.TaggedError("HttpFailure")<{ status: number; retryAfterMs?: number }> {}

const transient = (e: HttpFailure) => e.status === 429 || e.status >= 500
const retryAfterOf = (e: HttpFailure) => Option.map(Option.fromNullable(e.retryAfterMs), Duration.millis)

/**
 * An HTTP call answering from a script (the last step repeats), recording the TestClock time of each call relative
 * to the first.
 */
const httpCall = (script: ReadonlyArray<HttpFailure | string>) =>
  Effect.map(Ref.make<ReadonlyArray<number>>([]), (times) => {
    const call: Effect.Effect<string, HttpFailure> = Effect.flatMap(TestClock.currentTimeMillis, (now) =>
      Effect.flatMap(Ref.modify(times, (ts) => [ts.length, [...ts, now]]), (i) => {
        const step = script[Math.min(i, script.length - 1)]
        return typeof step === "string" ? Effect.succeed(step) : Effect.fail(step)
      }))
    return { call, times: Effect.map(Ref.get(times), (ts) => ts.map((t) => t - ts[0])) }
  })

/** Runs `effect` to the end on the TestClock. */
const settle = <A, E, R>(effect: Effect.Effect<A, E, R>, advance: Duration.DurationInput = "10 minutes") =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.exit(effect))
    yield* TestClock.adjust(advance)
    return yield* Fiber.join(fiber)
  })

describe("Retry.withRetry over a user's error type", () => {
  it.effect("retryOn picks the errors worth another call: 503, 503, then the answer at 0, 1000, 3000", () =>
    Effect.gen(function* () {
      const { call, times } = yield* httpCall([new HttpFailure({ status: 503 }), new HttpFailure({ status: 502 }), "ok"])
      const exit = yield* settle(call.pipe(Retry.withRetry({ retryOn: transient, jitter: "none" })))
      expect(exit).toEqual(Exit.succeed("ok"))
      expect(yield* times).toEqual([0, 1000, 3000])
    }))

  it.effect("an error retryOn rejects is returned at once; an exhausted retry returns the last error", () =>
    Effect.gen(function* () {
      const notFound = yield* httpCall([new HttpFailure({ status: 404 })])
      const exit = yield* settle(notFound.call.pipe(Retry.withRetry({ retryOn: transient })))
      expect(exit).toEqual(Exit.fail(new HttpFailure({ status: 404 })))
      expect(yield* notFound.times).toEqual([0])
      const down = yield* httpCall([new HttpFailure({ status: 503 }), new HttpFailure({ status: 500 })])
      const last = yield* settle(Retry.withRetry(down.call, { retryOn: transient, maxRetries: 2, jitter: "none" }))
      expect(last).toEqual(Exit.fail(new HttpFailure({ status: 500 })))
      expect(yield* down.times).toEqual([0, 1000, 3000])
    }))

  it.effect("retryAfter is honoured: a longer one is waited in full, one over maxRetryAfter stops at once", () =>
    Effect.gen(function* () {
      const limited = yield* httpCall([new HttpFailure({ status: 429, retryAfterMs: 45_000 }), "ok"])
      const options = { retryOn: transient, retryAfter: retryAfterOf, maxDelay: "10 seconds" } as const
      expect(yield* settle(limited.call.pipe(Retry.withRetry(options)))).toEqual(Exit.succeed("ok"))
      expect(yield* limited.times).toEqual([0, 45_000])

      const tooLong = yield* httpCall([new HttpFailure({ status: 429, retryAfterMs: 90_000 }), "ok"])
      const fiber = yield* Effect.fork(Effect.exit(tooLong.call.pipe(Retry.withRetry(options))))
      // the TestClock never moves: the error comes back without a wait
      expect(yield* Fiber.join(fiber)).toEqual(Exit.fail(new HttpFailure({ status: 429, retryAfterMs: 90_000 })))
      expect(yield* tooLong.times).toEqual([0])
    }))

  it.effect("without retryAfter a user's error asks for no wait; honorRetryAfter: false ignores it", () =>
    Effect.gen(function* () {
      const limited = yield* httpCall([new HttpFailure({ status: 429, retryAfterMs: 45_000 }), "ok"])
      yield* settle(limited.call.pipe(Retry.withRetry({ retryOn: transient, jitter: "none" })))
      expect(yield* limited.times).toEqual([0, 1000])
      const ignored = yield* httpCall([new HttpFailure({ status: 429, retryAfterMs: 45_000 }), "ok"])
      yield* settle(ignored.call.pipe(
        Retry.withRetry({ retryOn: transient, retryAfter: retryAfterOf, honorRetryAfter: false, jitter: "none" })
      ))
      expect(yield* ignored.times).toEqual([0, 1000])
    }))

  it.effect("a user Schedule decides the delays and when to stop", () =>
    Effect.gen(function* () {
      const { call, times } = yield* httpCall([new HttpFailure({ status: 503 })])
      const schedule = Schedule.spaced("250 millis").pipe(Schedule.intersect(Schedule.recurs(2)))
      const exit = yield* settle(call.pipe(Retry.withRetry({ retryOn: transient, schedule })))
      expect(exit).toEqual(Exit.fail(new HttpFailure({ status: 503 })))
      expect(yield* times).toEqual([0, 250, 500])
    }))

  it.effect("a user Schedule sees each error (whileInput) and its jitter is pinned by Random", () =>
    Effect.gen(function* () {
      const { call, times } = yield* httpCall([
        new HttpFailure({ status: 503 }),
        new HttpFailure({ status: 503 }),
        new HttpFailure({ status: 502 })
      ])
      const schedule = Schedule.exponential("1 second").pipe(
        Schedule.jittered, // × U[0.8, 1.2]: 1.0 with Random pinned at 0.5
        Schedule.whileInput((e: HttpFailure) => e.status === 503)
      )
      const exit = yield* settle(call.pipe(Retry.withRetry({ retryOn: transient, schedule })))
      expect(exit).toEqual(Exit.fail(new HttpFailure({ status: 502 })))
      expect(yield* times).toEqual([0, 1000, 3000])
    }).pipe(Effect.withRandomFixed([0.5])))

  it.effect("with a Schedule, a longer Retry-After is waited in full and maxRetryAfter still stops", () =>
    Effect.gen(function* () {
      const schedule = Schedule.spaced("100 millis")
      const { call, times } = yield* httpCall([
        new HttpFailure({ status: 429, retryAfterMs: 2000 }),
        new HttpFailure({ status: 503 }),
        new HttpFailure({ status: 429, retryAfterMs: 120_000 })
      ])
      const exit = yield* settle(call.pipe(Retry.withRetry({ retryOn: transient, retryAfter: retryAfterOf, schedule })))
      expect(exit).toEqual(Exit.fail(new HttpFailure({ status: 429, retryAfterMs: 120_000 })))
      expect(yield* times).toEqual([0, 2000, 2100])
    }))

  it.effect("with a Schedule, maxRetries (no default then) caps the schedule", () =>
    Effect.gen(function* () {
      const { call, times } = yield* httpCall([new HttpFailure({ status: 503 })])
      const schedule = Schedule.spaced("1 second")
      yield* settle(call.pipe(Retry.withRetry({ retryOn: transient, schedule, maxRetries: 4 })))
      expect(yield* times).toEqual([0, 1000, 2000, 3000, 4000])
      const uncapped = yield* httpCall([new HttpFailure({ status: 503 }), new HttpFailure({ status: 503 }), new HttpFailure({ status: 503 }), new HttpFailure({ status: 503 }), new HttpFailure({ status: 503 }), "ok"])
      expect(yield* settle(uncapped.call.pipe(Retry.withRetry({ retryOn: transient, schedule })))).toEqual(Exit.succeed("ok"))
      expect((yield* uncapped.times).length).toBe(6) // more than the default 3 retries: the schedule decides
    }))

  it.effect("the shared budget limits retries of a user's error, with or without a Schedule", () =>
    Effect.gen(function* () {
      // ratio 0 and a floor of 0.1 / s × 10 s: one retry per window, for every call sharing the budget
      const budget = yield* Retry.makeBudget({ ratio: 0, minPerSecond: 0.1 })
      const first = yield* httpCall([new HttpFailure({ status: 503 })])
      yield* settle(first.call.pipe(Retry.withRetry({ retryOn: transient, jitter: "none", budget })), "5 seconds")
      expect(yield* first.times).toEqual([0, 1000]) // one retry granted, then the budget is spent
      const second = yield* httpCall([new HttpFailure({ status: 503 })])
      const schedule = Schedule.spaced("100 millis")
      const exit = yield* settle(second.call.pipe(Retry.withRetry({ retryOn: transient, schedule, budget })), "1 second")
      expect(exit).toEqual(Exit.fail(new HttpFailure({ status: 503 })))
      expect((yield* second.times).length).toBe(1)
      expect(yield* budget.snapshot).toEqual({ requests: 2, retries: 1, allowance: 1 })
    }))

  it.effect("onRetry receives the user's error (typed) and each retry is counted under its tag", () =>
    Effect.gen(function* () {
      const seen: Array<string> = []
      const before = yield* retriesOf("unknown", "HttpFailure")
      const { call } = yield* httpCall([new HttpFailure({ status: 503 }), new HttpFailure({ status: 500 }), "ok"])
      yield* settle(call.pipe(Retry.withRetry({
        retryOn: transient,
        jitter: "none",
        onRetry: (event) => {
          expectTypeOf(event.error).toEqualTypeOf<HttpFailure>()
          seen.push(`${event.retry}:${event.error.status}:${Duration.toMillis(event.delay)}:${event.model}`)
        }
      })))
      expect(seen).toEqual(["1:503:1000:unknown", "2:500:2000:unknown"])
      expect((yield* retriesOf("unknown", "HttpFailure")) - before).toBe(2)
    }))

  it.effect("a call that succeeds at once builds nothing: no Random, no Schedule step", () =>
    Effect.gen(function* () {
      const steps = yield* Ref.make(0)
      const schedule = Schedule.spaced("1 second").pipe(Schedule.tapInput(() => Ref.update(steps, (n) => n + 1)))
      const { call } = yield* httpCall(["ok"])
      expect(yield* call.pipe(Retry.withRetry({ retryOn: transient, schedule }))).toBe("ok")
      expect(yield* call.pipe(Retry.withRetry({ retryOn: transient }))).toBe("ok")
      expect(yield* Ref.get(steps)).toBe(0)
    }).pipe(Effect.withRandom({ ...Random.make(1), next: Effect.die("Random was used") } as Random.Random)))

  it.effect("Retry.schedule over a user's error plugs into Effect.retry", () =>
    Effect.gen(function* () {
      const { call, times } = yield* httpCall([new HttpFailure({ status: 503 }), new HttpFailure({ status: 404 })])
      const exit = yield* settle(Effect.retry(call, Retry.schedule({ retryOn: transient, jitter: "none" })))
      expect(exit).toEqual(Exit.fail(new HttpFailure({ status: 404 })))
      expect(yield* times).toEqual([0, 1000])
    }))

  it.effect("withStreamRetry over a user's error: retried before the first element", () =>
    Effect.gen(function* () {
      const { call, times } = yield* httpCall([new HttpFailure({ status: 503 }), "a"])
      const stream = Stream.fromEffect(call).pipe(Stream.concat(Stream.make("b")))
      const exit = yield* settle(Stream.runCollect(stream.pipe(Retry.withStreamRetry({ retryOn: transient, jitter: "none" }))))
      expect(Exit.map(exit, Chunk.toReadonlyArray)).toEqual(Exit.succeed(["a", "b"]))
      expect(yield* times).toEqual([0, 1000])
    }))

  it.effect("LlmErrors keep their defaults beside a user Schedule: RateLimited's Retry-After is waited", () =>
    Effect.gen(function* () {
      const { at, exit } = yield* timed()
      expect(Exit.isSuccess(exit)).toBe(true)
      expect(at).toEqual([0, 5000, 5100])
    }).pipe(Effect.provide(stack(
      [
        FakeLlm.fail(new LlmError.RateLimited({ retryAfter: Duration.seconds(5) })),
        FakeLlm.fail(unavailable()),
        FakeLlm.reply("ok")
      ],
      Retry.policy({ schedule: Schedule.spaced("100 millis") })
    ))))

  it.effect("a Schedule's requirements are added to R", () =>
    Effect.gen(function* () {
      class Pacing extends Context.Tag("test/Pacing")<Pacing, { readonly waitMs: number }>() {}
      const schedule = Schedule.identity<HttpFailure>().pipe(
        Schedule.intersect(Schedule.recurs(1)),
        Schedule.delayedEffect(() => Effect.map(Pacing, (p) => Duration.millis(p.waitMs)))
      )
      const { call, times } = yield* httpCall([new HttpFailure({ status: 503 }), "ok"])
      const retried = call.pipe(Retry.withRetry({ retryOn: transient, schedule }))
      expectTypeOf(retried).toEqualTypeOf<Effect.Effect<string, HttpFailure, Pacing>>()
      yield* settle(Effect.provideService(retried, Pacing, { waitMs: 700 }))
      expect(yield* times).toEqual([0, 700])
    }))
})

describe("Retry: how the types change", () => {
  class DbFailure extends Data.TaggedError("DbFailure")<{ code: string }> {}
  const http = Effect.fail(new HttpFailure({ status: 503 })) as Effect.Effect<string, HttpFailure>
  const llm = Effect.fail(new LlmError.RateLimited({})) as Effect.Effect<string, LlmError.RateLimited>

  it("A and E are unchanged, for a user's error and for an LlmError (narrowed subtypes stay narrow)", () => {
    expectTypeOf(http.pipe(Retry.withRetry({ retryOn: (e) => e.status >= 500 }))).toEqualTypeOf<
      Effect.Effect<string, HttpFailure>
    >()
    expectTypeOf(Retry.withRetry(http, { retryOn: (e) => e.status >= 500 })).toEqualTypeOf<
      Effect.Effect<string, HttpFailure>
    >()
    expectTypeOf(llm.pipe(Retry.withRetry({ maxRetries: 2 }))).toEqualTypeOf<Effect.Effect<string, LlmError.RateLimited>>()
    expectTypeOf(llm.pipe(Retry.withRetry())).toEqualTypeOf<Effect.Effect<string, LlmError.RateLimited>>()
    expectTypeOf(Retry.withRetry(llm)).toEqualTypeOf<Effect.Effect<string, LlmError.RateLimited>>()
    const retry3 = Retry.withRetry({ maxRetries: 3 })
    expectTypeOf(retry3(llm)).toEqualTypeOf<Effect.Effect<string, LlmError.RateLimited>>()
    const mixed = http as Effect.Effect<string, HttpFailure | DbFailure | LlmError.LlmError>
    expectTypeOf(mixed.pipe(Retry.withRetry({ retryOn: (e) => e._tag !== "DbFailure" }))).toEqualTypeOf<
      Effect.Effect<string, HttpFailure | DbFailure | LlmError.LlmError>
    >()
    // a Schedule over any input does not stand in the way of inferring E from the Effect
    expectTypeOf(http.pipe(Retry.withRetry({ retryOn: (e) => e.status >= 500, schedule: Schedule.spaced("1 second") })))
      .toEqualTypeOf<Effect.Effect<string, HttpFailure>>()
    const chunks = Stream.fail(new HttpFailure({ status: 503 })) as Stream.Stream<string, HttpFailure>
    expectTypeOf(chunks.pipe(Retry.withStreamRetry({ retryOn: (e) => e.status >= 500 }))).toEqualTypeOf<
      Stream.Stream<string, HttpFailure>
    >()
    expectTypeOf(Retry.schedule({ retryOn: (e: HttpFailure) => e.status >= 500 })).toEqualTypeOf<
      Schedule.Schedule<Duration.Duration, HttpFailure>
    >()
  })

  it("retryOn is required when E is not an LlmError, and is typed on E", () => {
    // @ts-expect-error: HttpFailure is not an LlmError, so retryOn is required
    http.pipe(Retry.withRetry({ maxRetries: 3 }))
    // @ts-expect-error: the same, data-first
    Retry.withRetry(http, { maxRetries: 3 })
    // @ts-expect-error: the same, without options
    Retry.withRetry(http)
    // @ts-expect-error: and for streams
    Retry.withStreamRetry(Stream.fail(new HttpFailure({ status: 503 })), {})
    // @ts-expect-error: a Schedule over LlmErrors cannot retry an HttpFailure
    Effect.retry(http, Retry.schedule({ maxRetries: 2 }))
    // @ts-expect-error: `status` is not on DbFailure: retryOn sees E
    Retry.withRetry(Effect.fail(new DbFailure({ code: "x" })), { retryOn: (e) => e.status >= 500 })
    // @ts-expect-error: a Schedule over another input type is rejected
    http.pipe(Retry.withRetry({ retryOn: () => true, schedule: Schedule.recurWhile((e: DbFailure) => e.code === "x") }))
  })
})

describe("Retry: schedule option validation", () => {
  it("backoff options beside a schedule, and a schedule that is not one, are reported with every path", () => {
    const both = Effect.succeed(1).pipe(
      Retry.withRetry({ schedule: Schedule.spaced("1 second"), baseDelay: "1 second", jitter: "none" })
    )
    expect(diedWith(Effect.runSyncExit(both))?.issues.map((i) => i.path).sort()).toEqual(["baseDelay", "jitter"])
    const badSchedule = Effect.succeed(1).pipe(Retry.withRetry({ schedule: "1 second" as unknown as Schedule.Schedule<unknown> }))
    expect(diedWith(Effect.runSyncExit(badSchedule))?.issues.map((i) => i.path)).toEqual(["schedule"])
    expect(() => Retry.policy({ retryAfter: 5 as unknown as () => Option.Option<Duration.Duration> })).toThrow(/retryAfter/)
  })
})
