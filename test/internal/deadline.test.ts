import { describe, expect, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Exit, Fiber, FiberRef, Option, Ref, TestClock } from "effect"
import { tryPromiseWithDeadline, withCurrentDeadline, withDeadline } from "../../src/internal/deadline.js"
import { Timeout } from "../../src/LlmError.js"

const timedOut = () => "timed out" as const

describe("withDeadline", () => {
  it.effect("returns the value when the effect ends before the deadline", () =>
    Effect.gen(function* () {
      const fiber = yield* Effect.fork(withDeadline(Effect.as(Effect.sleep("999 millis"), 42), Duration.seconds(1), timedOut))
      yield* TestClock.adjust("999 millis")
      expect(yield* Fiber.join(fiber)).toBe(42)
    }))

  it.effect("passes failures through unchanged", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(withDeadline(Effect.fail("boom" as const), Duration.seconds(1), timedOut))
      expect(error).toBe("boom")
    }))

  it.effect("fails after exactly the deadline, interrupting and awaiting the effect", () =>
    Effect.gen(function* () {
      const stopped = yield* Ref.make(false)
      const slow = Effect.never.pipe(Effect.onInterrupt(() => Ref.set(stopped, true)))
      const fiber = yield* Effect.fork(Effect.flip(withDeadline(slow, Duration.seconds(1), timedOut)))
      yield* TestClock.adjust("999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("timed out")
      expect(yield* Ref.get(stopped)).toBe(true)
    }))

  it.effect("waits for an effect whose interruption takes time before failing", () =>
    Effect.gen(function* () {
      const cleanup = Effect.never.pipe(Effect.onInterrupt(() => Effect.sleep("500 millis")))
      const fiber = yield* Effect.fork(Effect.flip(withDeadline(cleanup, Duration.seconds(1), timedOut)))
      yield* TestClock.adjust("1 second")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("500 millis")
      expect(yield* Fiber.join(fiber)).toBe("timed out")
    }))

  it.effect("a caller's interruption is an interruption, not a timeout, and stops the effect", () =>
    Effect.gen(function* () {
      const stopped = yield* Deferred.make<void>()
      const slow = Effect.never.pipe(Effect.onInterrupt(() => Deferred.succeed(stopped, undefined)))
      const fiber = yield* Effect.fork(withDeadline(slow, Duration.seconds(10), timedOut))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      yield* Deferred.await(stopped)
      // the timer is gone: moving past the deadline changes nothing
      yield* TestClock.adjust("1 minute")
    }))

  it.effect("a caller's interruption waits for an effect whose interruption takes time", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const slow = Effect.never.pipe(Effect.onInterrupt(() => Effect.zipRight(Effect.sleep("500 millis"), Effect.sync(() => log.push("stopped")))))
      const guarded = withDeadline(slow, Duration.seconds(10), timedOut).pipe(
        Effect.onExit((exit) => Effect.sync(() => log.push(Exit.isInterrupted(exit) ? "caller interrupted" : "other")))
      )
      const fiber = yield* Effect.fork(guarded)
      yield* TestClock.adjust("1 second")
      yield* Fiber.interruptFork(fiber)
      yield* TestClock.adjust("499 millis")
      expect(log).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
      expect(log).toEqual(["stopped", "caller interrupted"])
    }))

  it.effect("a caller interrupted while a timed-out effect is still stopping still waits for it to stop", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const slow = Effect.never.pipe(Effect.onInterrupt(() => Effect.zipRight(Effect.sleep("500 millis"), Effect.sync(() => log.push("stopped")))))
      const guarded = withDeadline(slow, Duration.seconds(1), timedOut).pipe(
        Effect.onExit((exit) => Effect.sync(() => log.push(Exit.isInterrupted(exit) ? "caller interrupted" : "other")))
      )
      const fiber = yield* Effect.fork(guarded)
      yield* TestClock.adjust("1 second") // the deadline passes: the effect starts stopping (500 ms)
      yield* TestClock.adjust("200 millis")
      yield* Fiber.interruptFork(fiber) // the caller gives up meanwhile
      yield* TestClock.adjust("299 millis")
      expect(log).toEqual([])
      yield* TestClock.adjust("1 millis")
      expect(Exit.isInterrupted(yield* Fiber.await(fiber))).toBe(true)
      // the caller's finalizers (a bulkhead slot, say) run only once the effect has stopped
      expect(log).toEqual(["stopped", "caller interrupted"])
    }))

  it.effect("keeps the effect's FiberRef changes on success, like Fiber.join", () =>
    Effect.gen(function* () {
      const ref = FiberRef.unsafeMake(0)
      yield* withDeadline(FiberRef.set(ref, 7), Duration.seconds(1), timedOut)
      expect(yield* FiberRef.get(ref)).toBe(7)
    }))

  it.effect("keeps the FiberRef changes of an effect that suspends, over values the caller set; untouched ones stay", () =>
    Effect.gen(function* () {
      const changed = FiberRef.unsafeMake(0)
      const untouched = FiberRef.unsafeMake("a")
      yield* FiberRef.set(changed, 3)
      yield* FiberRef.set(untouched, "b")
      const slow = Effect.zipRight(Effect.sleep("10 millis"), FiberRef.update(changed, (n) => n + 4))
      const fiber = yield* Effect.fork(withDeadline(slow, Duration.seconds(1), timedOut))
      yield* TestClock.adjust("10 millis")
      yield* Fiber.join(fiber)
      const after = yield* Effect.all([FiberRef.get(changed), FiberRef.get(untouched)])
      expect(after).toEqual([7, "b"])
      yield* withDeadline(slow, Duration.seconds(1), timedOut).pipe(
        Effect.zipLeft(TestClock.adjust("10 millis"), { concurrent: true })
      )
      expect(yield* Effect.all([FiberRef.get(changed), FiberRef.get(untouched)])).toEqual([11, "b"])
      // an effect that sets nothing leaves every value as it was
      yield* withDeadline(Effect.sleep("10 millis"), Duration.seconds(1), timedOut).pipe(
        Effect.zipLeft(TestClock.adjust("10 millis"), { concurrent: true })
      )
      expect(yield* Effect.all([FiberRef.get(changed), FiberRef.get(untouched)])).toEqual([11, "b"])
    }))

  it.effect("an infinite duration runs the effect as is", () =>
    Effect.gen(function* () {
      expect(yield* withDeadline(Effect.succeed(1), Duration.infinity, timedOut)).toBe(1)
    }))

  it.live("1000 sequential calls on the live clock leave no host timer behind", () =>
    Effect.gen(function* () {
      const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length
      const before = timers()
      for (let i = 0; i < 1000; i++) {
        yield* withDeadline(Effect.promise(() => Promise.resolve(i)), Duration.seconds(30), timedOut)
      }
      expect(timers()).toBe(before)
    }))

  it.live("on the live clock, a caller's interruption clears the host timer", () =>
    Effect.gen(function* () {
      const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length
      const before = timers()
      const fiber = yield* Effect.fork(withDeadline(Effect.never, Duration.seconds(30), timedOut))
      yield* Effect.yieldNow()
      expect(timers()).toBe(before + 1)
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      expect(timers()).toBe(before)
    }))

  // The live Clock takes the host-timer path: check it once with a few milliseconds.
  it.live("with the live clock, a hanging effect times out and a fast one does not", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(withDeadline(Effect.never, Duration.millis(5), timedOut))
      expect(error).toBe("timed out")
      expect(yield* withDeadline(Effect.succeed("fast"), Duration.millis(5), timedOut)).toBe("fast")
    }))
})

describe("tryPromiseWithDeadline", () => {
  const deadlineError = new Timeout({ phase: "attempt", after: Duration.seconds(1) })
  const withLeaf = <A, E>(self: Effect.Effect<A, E>) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) =>
      withCurrentDeadline(self, { at: now + 1_000, onTimeout: () => deadlineError }))

  it.effect("fails with the deadline's Timeout at the instant even when the promise ignores the signal", () =>
    Effect.gen(function* () {
      let signal: AbortSignal | undefined
      const call = tryPromiseWithDeadline((s) => {
        signal = s
        return new Promise<never>(() => {})
      })
      const fiber = yield* Effect.fork(Effect.flip(withLeaf(call)))
      yield* TestClock.adjust("999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      expect(signal?.aborted).toBe(false)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe(deadlineError)
      expect(signal?.aborted).toBe(true)
    }))

  it.effect("a settled promise wins before the deadline; a caller's interruption aborts and is an interruption", () =>
    Effect.gen(function* () {
      expect(yield* withLeaf(tryPromiseWithDeadline(() => Promise.resolve(7)))).toBe(7)
      let signal: AbortSignal | undefined
      const fiber = yield* Effect.fork(withLeaf(tryPromiseWithDeadline((s) => {
        signal = s
        return new Promise<never>(() => {})
      })))
      yield* TestClock.adjust("500 millis")
      expect(Exit.isInterrupted(yield* Fiber.interrupt(fiber))).toBe(true)
      expect(signal?.aborted).toBe(true)
    }))
})
