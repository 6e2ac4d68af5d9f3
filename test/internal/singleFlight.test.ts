import { describe, expect, it } from "@effect/vitest"
import { type Duration, Effect, Exit, Fiber, Ref, TestClock } from "effect"
import * as SingleFlight from "../../src/internal/singleFlight.js"

const counted = (runs: Ref.Ref<number>, value: string, delay: Duration.DurationInput = "1 second") =>
  Effect.zipRight(Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.sleep(delay)), Effect.succeed(value))

describe("SingleFlight", () => {
  it.effect("a duplicate waits and shares the value; one leader", () =>
    Effect.gen(function* () {
      const flights = SingleFlight.make<string, undefined>()
      const runs = yield* Ref.make(0)
      const fiber = yield* Effect.fork(Effect.all(
        Array.from({ length: 5 }, () => flights.run("k", undefined, counted(runs, "v"))),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("1 second")
      const joined = yield* Fiber.join(fiber)
      expect(joined.map((j) => j.value)).toEqual(["v", "v", "v", "v", "v"])
      expect(joined.filter((j) => j.leader)).toHaveLength(1)
      expect(yield* Ref.get(runs)).toBe(1)
    }))

  it.effect("nothing is kept after completion: the next call runs again (no caching)", () =>
    Effect.gen(function* () {
      const flights = SingleFlight.make<string, undefined>()
      const runs = yield* Ref.make(0)
      yield* flights.run("k", undefined, counted(runs, "a", "0 millis"))
      yield* flights.run("k", undefined, counted(runs, "b", "0 millis"))
      expect(yield* Ref.get(runs)).toBe(2)
      expect(flights.size()).toBe(0)
    }))

  it.effect("a defect reaches every waiter", () =>
    Effect.gen(function* () {
      const flights = SingleFlight.make<string, undefined>()
      const boom = Effect.zipRight(Effect.sleep("1 second"), Effect.die("boom"))
      const fiber = yield* Effect.fork(Effect.all(
        Array.from({ length: 3 }, () => Effect.exit(flights.run("k", undefined, boom))),
        { concurrency: "unbounded" }
      ))
      yield* TestClock.adjust("1 second")
      const exits = yield* Fiber.join(fiber)
      expect(exits.every((e) => Exit.isFailure(e) && e.cause._tag === "Die")).toBe(true)
    }))

  it.effect("the guard sees the running flight's metadata and may refuse to join", () =>
    Effect.gen(function* () {
      const flights = SingleFlight.make<string, string>()
      const runs = yield* Ref.make(0)
      const first = yield* Effect.fork(flights.run("k", "fp-1", counted(runs, "v")))
      yield* TestClock.adjust("10 millis")
      expect(flights.meta("k")).toBe("fp-1")
      const refused = yield* Effect.flip(
        flights.run("k", "fp-2", counted(runs, "w"), (running) => running === "fp-2" ? undefined : Effect.fail("mismatch" as const))
      )
      expect(refused).toBe("mismatch")
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(first)).value).toBe("v")
      expect(yield* Ref.get(runs)).toBe(1)
    }))

  it.effect("the work is interrupted only when its last waiter leaves", () =>
    Effect.gen(function* () {
      const flights = SingleFlight.make<string, undefined>()
      const interrupted = yield* Ref.make(false)
      const work = Effect.onInterrupt(Effect.as(Effect.sleep("1 second"), "v"), () => Ref.set(interrupted, true))
      const waiters = yield* Effect.all(Array.from({ length: 2 }, () => Effect.fork(flights.run("k", undefined, work))))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.interrupt(waiters[0])
      expect(yield* Ref.get(interrupted)).toBe(false)
      const late = yield* Effect.fork(flights.joinIfRunning("k"))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.interrupt(waiters[1])
      expect(yield* Ref.get(interrupted)).toBe(false)
      yield* Fiber.interrupt(late)
      expect(yield* Ref.get(interrupted)).toBe(true)
      expect(flights.size()).toBe(0)
      expect((yield* flights.joinIfRunning("k"))._tag).toBe("None")
    }))
})
