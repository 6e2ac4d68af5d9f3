/**
 * The hedging engine. One logical call starts its primary attempt; each time `delay` passes without an answer (or
 * an attempt fails with a retryable error) and hedges are left, one more attempt starts, if the retry budget grants
 * it. The first success wins; every other attempt is interrupted (its HTTP request aborted) and awaited before the
 * call returns. When every attempt failed, the primary's error is returned.
 *
 * Streams hedge only until one attempt has started (its first real delta, streamProgress.ts): that attempt is then
 * the answer, the others are interrupted, and nothing is hedged after.
 */
import { Cause, Chunk, Clock, Duration, Effect, Exit, Fiber, Option, Queue, Scope, Stream } from "effect"
import { ChatRequest, ChatResponse, type ChatChunk } from "../Llm.js"
import type * as LlmClient from "../LlmClient.js"
import * as LlmError from "../LlmError.js"
import * as LlmMetrics from "../LlmMetrics.js"
import type * as Retry from "../Retry.js"
import { hasProgress } from "./streamProgress.js"
import * as Telemetry from "./telemetry.js"

/** The hedge delay: fixed, or a percentile of the recent latencies of the model. */
export type Delay =
  | { readonly _tag: "Fixed"; readonly ms: number }
  | {
    readonly _tag: "Percentile"
    readonly percentile: number
    readonly minMs: number
    readonly initialMs: number
    readonly minSamples: number
    readonly window: number
  }

/** Settings, validated. */
export interface Config {
  readonly delay: Delay
  readonly maxHedges: number
  readonly budget: Retry.Budget | undefined
  readonly deposit: boolean
  readonly onError: boolean
}

/** Recent latencies of one model: a ring of `window` samples and the percentile, recomputed every few samples. */
export class LatencyWindow {
  private readonly samples: Float64Array
  private size = 0
  private next = 0
  private sinceComputed = 0
  private cached = Number.NaN

  constructor(readonly window: number, readonly percentile: number) {
    this.samples = new Float64Array(window)
  }

  add(ms: number): void {
    this.samples[this.next] = ms
    this.next = (this.next + 1) % this.window
    if (this.size < this.window) this.size++
    this.sinceComputed++
  }

  count(): number {
    return this.size
  }

  /** The percentile (nearest rank) of the samples, recomputed once 1/16 as many new samples as it holds came in. */
  value(): number {
    if (Number.isNaN(this.cached) || this.sinceComputed >= Math.max(1, this.size >> 4)) {
      const sorted = Array.from(this.samples.subarray(0, this.size)).sort((a, b) => a - b)
      const rank = Math.ceil((this.percentile / 100) * sorted.length) - 1
      this.cached = sorted[Math.min(sorted.length - 1, Math.max(0, rank))] ?? 0
      this.sinceComputed = 0
    }
    return this.cached
  }
}

/** Per-model latency windows (bounded: the models of one application). */
export class Latencies {
  private readonly byModel = new Map<string, LatencyWindow>()

  constructor(readonly delay: Delay) {}

  delayMs(model: string): number {
    const d = this.delay
    if (d._tag === "Fixed") return d.ms
    const window = this.byModel.get(model)
    if (window === undefined || window.count() < d.minSamples) return d.initialMs
    return Math.max(d.minMs, window.value())
  }

  record(model: string, ms: number): void {
    const d = this.delay
    if (d._tag === "Fixed") return
    let window = this.byModel.get(model)
    if (window === undefined) {
      if (this.byModel.size >= 1_000) return
      window = new LatencyWindow(d.window, d.percentile)
      this.byModel.set(model, window)
    }
    window.add(ms)
  }
}

type Event<A> = { readonly index: number; readonly exit: Exit.Exit<A, LlmError.LlmError> }

/** What a race returns: the winner and how many attempts were started. */
interface Won<A> {
  readonly value: A
  readonly index: number
  readonly started: number
}

const count = (model: string, outcome: string, n = 1) => LlmMetrics.count(LlmMetrics.hedges, { model, outcome }, n)

const grant = (config: Config): Effect.Effect<boolean> =>
  config.budget === undefined ? Effect.succeed(true) : config.budget.tryWithdraw

/**
 * Races attempts as described in the module comment. `dispose` is called on a success that lost (two attempts that
 * succeeded at about the same time): a stream's open attempt is closed with it.
 */
export const race = <A>(
  config: Config,
  model: string,
  delayMs: number,
  attempt: (index: number) => Effect.Effect<A, LlmError.LlmError>,
  dispose: (a: A) => Effect.Effect<void>
): Effect.Effect<Won<A>, LlmError.LlmError> =>
  Effect.scoped(Effect.gen(function* () {
    const events = yield* Queue.unbounded<Event<A>>()
    const fibers: Array<Fiber.RuntimeFiber<boolean>> = []
    const launch = (index: number) =>
      Effect.map(
        Effect.forkScoped(Effect.flatMap(Effect.exit(attempt(index)), (exit) => Queue.offer(events, { index, exit }))),
        (fiber) => {
          fibers.push(fiber)
        }
      )
    let started = 0
    let settled = 0
    let hedging = config.maxHedges > 0
    let primary: LlmError.LlmError | undefined
    const tryHedge = Effect.gen(function* () {
      if (!hedging || started > config.maxHedges) return
      if (!(yield* grant(config))) {
        hedging = false
        yield* count(model, "refused")
        return
      }
      yield* Telemetry.addEvent(LlmMetrics.events.hedge, () => ({ "llm.hedge.attempt": started, "llm.hedge.delay_ms": delayMs }))
      yield* count(model, "sent")
      yield* launch(started++)
    })
    yield* launch(started++)
    while (true) {
      const waiting = hedging && started <= config.maxHedges
      const next = waiting
        ? yield* Effect.timeoutOption(Queue.take(events), Duration.millis(delayMs))
        : Option.some(yield* Queue.take(events))
      if (Option.isNone(next)) {
        yield* tryHedge
        continue
      }
      const { exit, index } = next.value
      settled++
      if (Exit.isSuccess(exit)) {
        // The losers are interrupted and awaited; a loser that succeeded meanwhile is disposed.
        yield* Fiber.interruptAll(fibers)
        const late = yield* Queue.takeAll(events)
        yield* Effect.forEach(late, (e) => (Exit.isSuccess(e.exit) ? dispose(e.exit.value) : Effect.void), { discard: true })
        if (index > 0) yield* count(model, "won")
        return { value: exit.value, index, started } satisfies Won<A>
      }
      const failure = Cause.failureOption(exit.cause)
      // A defect or an interruption is never hedged over; nor is an error another attempt would repeat.
      if (Option.isNone(failure)) return yield* Effect.failCause(exit.cause)
      if (!LlmError.isRetryable(failure.value)) return yield* Effect.fail(failure.value)
      if (index === 0) primary = failure.value
      if (config.onError) yield* tryHedge
      if (settled === started && !(hedging && started <= config.maxHedges)) {
        return yield* Effect.fail(primary ?? failure.value)
      }
    }
  }))

/** The response with the prompt tokens of every other attempt that was sent added to its usage: they were billed. */
const charged = (response: ChatResponse, started: number): ChatResponse =>
  started <= 1 ? response : new ChatResponse({
    ...response,
    usage: { ...response.usage, inputTokens: response.usage.inputTokens * started }
  }, true)

const deposit = (config: Config) =>
  config.deposit && config.budget !== undefined ? config.budget.deposit : Effect.void

/**
 * Measures an attempt for the percentile: the latency of each attempt that succeeded. The losers are left out: the
 * time they had run is only a lower bound of their latency, and counting it lets the percentile climb after itself
 * (each slow primary recorded at delay + the hedge's latency raises the delay).
 */
const measured = <A>(latencies: Latencies, model: string, effect: Effect.Effect<A, LlmError.LlmError>) =>
  Effect.flatMap(Clock.currentTimeMillis, (start) =>
    Effect.tap(effect, () =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => latencies.record(model, now - start)))))

/** The completion path. */
export const complete = (config: Config, latencies: Latencies, next: LlmClient.Complete): LlmClient.Complete =>
  (request) =>
    Effect.zipRight(
      deposit(config),
      Effect.suspend(() => {
        const delayMs = latencies.delayMs(request.model)
        const attempt = () => measured(latencies, request.model, next(request))
        return Effect.map(race(config, request.model, delayMs, attempt, () => Effect.void), (won) =>
          charged(won.value, won.started))
      })
    )

/** An attempt of a stream that has started: what it emitted so far, the rest to pull, the scope holding it open. */
interface Started {
  readonly head: Chunk.Chunk<ChatChunk>
  readonly pull: Effect.Effect<Chunk.Chunk<ChatChunk>, Option.Option<LlmError.LlmError>>
  readonly scope: Scope.CloseableScope
  readonly done: boolean
}

const startStream = (
  stream: Stream.Stream<ChatChunk, LlmError.LlmError>
): Effect.Effect<Started, LlmError.LlmError> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Scope.make(), (scope) => {
      const pullUntilStarted = Effect.gen(function* () {
        const pull = yield* Scope.extend(Stream.toPull(stream), scope)
        let head = Chunk.empty<ChatChunk>()
        while (true) {
          const chunk = yield* Effect.either(pull)
          if (chunk._tag === "Left") {
            if (Option.isSome(chunk.left)) return yield* Effect.fail(chunk.left.value)
            return { head, pull, scope, done: true } satisfies Started
          }
          head = Chunk.appendAll(head, chunk.right)
          if (hasProgress(chunk.right)) return { head, pull, scope, done: false } satisfies Started
        }
      })
      return Effect.onExit(restore(pullUntilStarted), (exit) => (Exit.isSuccess(exit) ? Effect.void : Scope.close(scope, exit)))
    })
  )

// The winner's scope closes with the stream's own scope (Stream.unwrapScoped below), however the stream ends, even
// when it is never pulled.
const rest = (started: Started): Stream.Stream<ChatChunk, LlmError.LlmError> => {
  const tail = started.done ? Stream.empty : Stream.repeatEffectChunkOption(started.pull)
  return Stream.concat(Stream.fromChunk(started.head), tail)
}

/** The streaming path: hedged until the first real delta of one attempt. */
export const stream = (config: Config, latencies: Latencies, next: LlmClient.StreamFn): LlmClient.StreamFn =>
  (request: ChatRequest) =>
    Stream.unwrapScoped(Effect.zipRight(
      deposit(config),
      Effect.suspend(() => {
        const delayMs = latencies.delayMs(request.model)
        const attempt = () => measured(latencies, request.model, startStream(next(request)))
        return Effect.uninterruptibleMask((restore) =>
          Effect.flatMap(
            restore(race(config, request.model, delayMs, attempt, (started) => Scope.close(started.scope, Exit.void))),
            (won) => Effect.as(Effect.addFinalizer((exit) => Scope.close(won.value.scope, exit)), rest(won.value))
          )
        )
      })
    ))
