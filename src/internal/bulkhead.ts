/**
 * Bulkhead's engine. One compartment: `running` slots out of `maxConcurrent`, and a FIFO queue of at most `maxQueue`
 * waiters. A released slot is handed straight to the oldest waiter, so a late arrival never overtakes the queue.
 * All bookkeeping is synchronous (one fiber runs at a time), so every step is atomic. Then the options Schema, and
 * the guards of an effect and a stream (a slot held until the effect stops, or the stream's scope closes).
 */
import { Deferred, Duration, Effect, Either, Exit, FiberId, Option, Schema, Stream } from "effect"
import type { Bulkhead, MakeOptions, Policy, PolicyOptions, Stats } from "../Bulkhead.js"
import { decode, type InvalidOptions } from "../InvalidOptions.js"
import type { ChatRequest } from "../Llm.js"
import { BulkheadRejected } from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import { DurationInput } from "./durationInput.js"
import { strict } from "./optionSchemas.js"
import { keyFunction } from "./policyKey.js"
import * as Telemetry from "./telemetry.js"

export interface Waiter {
  granted: boolean
  readonly deferred: Deferred.Deferred<void>
}

/** Why a call could not get a slot. */
export type Refusal = "full" | "timedOut"

export class Compartment {
  running = 0
  private readonly waiters: Array<Waiter> = []

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueue: number,
    private readonly onIdle: () => void
  ) {}

  get queued(): number {
    return this.waiters.length
  }

  /** Takes a free slot, joins the queue, or refuses (a zero limit refuses everything). */
  enter(): "acquired" | "full" | Waiter {
    if (this.maxConcurrent === 0) return "full"
    if (this.running < this.maxConcurrent && this.waiters.length === 0) {
      this.running++
      return "acquired"
    }
    if (this.waiters.length >= this.maxQueue) return "full"
    const waiter: Waiter = { granted: false, deferred: Deferred.unsafeMake(FiberId.none) }
    this.waiters.push(waiter)
    return waiter
  }

  /** Frees a slot: the oldest waiter gets it, else it becomes free. */
  release(): void {
    const next = this.waiters.shift()
    if (next !== undefined) {
      next.granted = true
      Deferred.unsafeDone(next.deferred, Exit.void)
      return
    }
    this.running--
    if (this.running === 0) this.onIdle()
  }

  /** A waiter gives up: it leaves the queue, or passes on the slot it was just handed. */
  leave(waiter: Waiter): void {
    if (waiter.granted) return this.release()
    const index = this.waiters.indexOf(waiter)
    if (index >= 0) this.waiters.splice(index, 1)
    if (this.running === 0 && this.waiters.length === 0) this.onIdle()
  }
}

/**
 * Waits for a slot of the compartment `resolve` returns (looked up in the same synchronous step that enters it,
 * so an idle compartment dropped meanwhile is never used). Waits interruptibly, through `restore`; must run
 * uninterruptibly so that a slot handed over at the moment of an interruption is passed on, never lost.
 * Succeeds with the compartment to release.
 */
export const acquire = (
  resolve: () => Compartment,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>,
  maxWait: Duration.Duration | undefined
): Effect.Effect<Compartment, Refusal> =>
  Effect.suspend(() => {
    const compartment = resolve()
    const entry = compartment.enter()
    if (entry === "acquired") return Effect.succeed(compartment)
    if (entry === "full") return Effect.fail("full" as const)
    const wait = maxWait === undefined
      ? Effect.asSome(Deferred.await(entry.deferred))
      : Effect.timeoutOption(Deferred.await(entry.deferred), maxWait)
    return restore(wait).pipe(
      Effect.onInterrupt(() => Effect.sync(() => compartment.leave(entry))),
      Effect.flatMap((got) => {
        if (Option.isSome(got) || entry.granted) return Effect.succeed(compartment)
        compartment.leave(entry)
        return Effect.fail("timedOut" as const)
      })
    )
  })

const NonNegativeInt = Schema.Int.pipe(Schema.greaterThanOrEqualTo(0))
const Per = Schema.Union(
  Schema.Literal("model", "provider"),
  Schema.declare((u: unknown): u is (request: ChatRequest) => string => typeof u === "function", {
    identifier: "Function",
    message: () => "Expected \"model\", \"provider\" or a function of the request"
  })
)
const limitFields = {
  maxConcurrent: NonNegativeInt,
  maxQueue: Schema.optional(NonNegativeInt),
  maxWait: Schema.optional(DurationInput)
}
// Misspelt names are reported, not ignored; `make` takes a `key`, `policy` a `per`.
const MakeSchema = Schema.Struct({ ...limitFields, key: Schema.optional(Schema.NonEmptyString) }).annotations(strict)
const PolicySchema = Schema.Struct({ ...limitFields, per: Schema.optional(Per) }).annotations(strict)

interface Limits {
  readonly key: string | undefined
  readonly maxConcurrent: number
  readonly maxQueue: number
  readonly maxWait: Duration.Duration | undefined
  readonly per: PolicyOptions["per"]
}

const decodeOptions = (input: unknown, kind: "make" | "policy"): Either.Either<Limits, InvalidOptions> =>
  kind === "make"
    ? Either.map(decode(MakeSchema, "Bulkhead", input), (o) => limitsOf(o, o.key, undefined))
    : Either.map(decode(PolicySchema, "Bulkhead", input), (o) => limitsOf(o, undefined, o.per))

const limitsOf = (
  o: { readonly maxConcurrent: number; readonly maxQueue?: number | undefined; readonly maxWait?: Duration.Duration | undefined },
  key: string | undefined,
  per: PolicyOptions["per"]
): Limits => ({ key, maxConcurrent: o.maxConcurrent, maxQueue: o.maxQueue ?? 0, maxWait: o.maxWait, per })

const fromEither = <A, E>(either: Either.Either<A, E>): Effect.Effect<A, E> =>
  Either.isRight(either) ? Effect.succeed(either.right) : Effect.fail(either.left)

const statsOf = (key: string, limits: Limits, compartment: Compartment | undefined): Stats => ({
  key,
  running: compartment?.running ?? 0,
  queued: compartment?.queued ?? 0,
  maxConcurrent: limits.maxConcurrent,
  maxQueue: limits.maxQueue
})

const refuse = (key: string, limits: Limits, model: string | undefined) => (_: Refusal) =>
  Effect.zipRight(
    Effect.zipRight(LlmMetrics.count(LlmMetrics.bulkheadRejections, { key }), Telemetry.bulkheadRejected(key)),
    Effect.fail(new BulkheadRejected({ key, maxConcurrent: limits.maxConcurrent, maxQueue: limits.maxQueue, model }, true))
  )

const guardEffect = <A, E, R>(
  resolve: () => Compartment,
  key: string,
  limits: Limits,
  model: string | undefined,
  effect: Effect.Effect<A, E, R>
): Effect.Effect<A, E | BulkheadRejected, R> =>
  Effect.uninterruptibleMask((restore) =>
    acquire(resolve, restore, limits.maxWait).pipe(
      Effect.catchAll(refuse(key, limits, model)),
      // The slot is released only when the effect has stopped, interrupted or not.
      Effect.flatMap((compartment) =>
        Effect.flatMap(Effect.exit(restore(effect)), (exit) => {
          compartment.release()
          return exit
        })
      )
    )
  )

const guardStream = <A, E, R>(
  resolve: () => Compartment,
  key: string,
  limits: Limits,
  model: string | undefined,
  stream: Stream.Stream<A, E, R>
): Stream.Stream<A, E | BulkheadRejected, R> =>
  Stream.unwrapScoped(
    Effect.uninterruptibleMask((restore) =>
      acquire(resolve, restore, limits.maxWait).pipe(
        Effect.catchAll(refuse(key, limits, model)),
        Effect.flatMap((compartment) => Effect.addFinalizer(() => Effect.sync(() => compartment.release()))),
        Effect.as(stream)
      )
    )
  )

/** One compartment (documented as `Bulkhead.make`). */
export const make = (options: MakeOptions): Effect.Effect<Bulkhead, InvalidOptions> =>
  Effect.flatMap(fromEither(decodeOptions(options, "make")), (limits) =>
    Effect.sync(() => {
      const key = limits.key ?? "default"
      const compartment = new Compartment(limits.maxConcurrent, limits.maxQueue, () => {})
      return {
        key,
        stats: Effect.sync(() => statsOf(key, limits, compartment)),
        execute: (effect) => guardEffect(() => compartment, key, limits, undefined, effect)
      }
    }))

/** A compartment per key of the request (documented as `Bulkhead.policy`). */
export const policy = (options: PolicyOptions): Effect.Effect<Policy, InvalidOptions> =>
  Effect.flatMap(fromEither(decodeOptions(options, "policy")), (limits) =>
    Effect.sync(() => {
      const keyOf = keyFunction(limits.per)
      const compartments = new Map<string, Compartment>()
      // Idle compartments are dropped, so keys derived from requests do not accumulate.
      const compartmentOf = (key: string): Compartment => {
        let compartment = compartments.get(key)
        if (compartment === undefined) {
          compartment = new Compartment(limits.maxConcurrent, limits.maxQueue, () => compartments.delete(key))
          compartments.set(key, compartment)
        }
        return compartment
      }
      return {
        name: "Bulkhead",
        keyOf,
        stats: (key) => Effect.sync(() => statsOf(key, limits, compartments.get(key))),
        // A `per` function that throws is a defect of the call, never a synchronous throw out of `complete`.
        complete: (next) => (request) =>
          Effect.suspend(() => {
            const key = keyOf(request)
            return guardEffect(() => compartmentOf(key), key, limits, request.model, next(request))
          }),
        stream: (next) => (request) =>
          Stream.suspend(() => {
            const key = keyOf(request)
            return guardStream(() => compartmentOf(key), key, limits, request.model, next(request))
          })
      }
    }))
