/**
 * RateLimit's `providerQuota`: before a call is sent, wait (or fail) while the provider's rate-limit headers say the
 * quota of the request's model is spent, or too short for the call's estimate, until its reset. The view is this
 * process's (learned from its own responses), one per model, kept with the pure steps of `quota.ts`: each call
 * admitted takes its share at once, a response's headers only lower it until the reset.
 */
import { Clock, Duration, Effect, Stream } from "effect"
import type { ChatRequest } from "../Llm.js"
import { RateLimited } from "../LlmError.js"
import * as Quota from "./quota.js"

interface View {
  quota: Quota.Quota | undefined
  inFlight: number
}

/** What the gate needs from its policy. */
export interface GateOptions {
  readonly onLimit: "wait" | "fail"
  readonly maxWait: Duration.Duration | undefined
  /** The call's estimated tokens (prompt + maxTokens); asked only when the view has a token quota. */
  readonly estimate: (request: ChatRequest) => Effect.Effect<number>
  /** Records a wait or a refusal (metric, span event). */
  readonly record: (action: "waited" | "rejected") => Effect.Effect<void>
}

/** Views are per model name: a model that stops being used keeps one small record (models are few). */
export const makeGate = (options: GateOptions) => {
  const views = new Map<string, View>()
  const viewOf = (model: string): View => {
    let view = views.get(model)
    if (view === undefined) views.set(model, view = { quota: undefined, inFlight: 0 })
    return view
  }

  const tokensFor = (view: View, request: ChatRequest) =>
    view.quota?.tokens === undefined ? Effect.succeed(0) : options.estimate(request)

  // Waits until the view admits the call, then takes its share (synchronously: one process, no race).
  const enter = (request: ChatRequest): Effect.Effect<number, RateLimited> =>
    Effect.gen(function* () {
      const view = viewOf(request.model)
      const tokens = yield* tokensFor(view, request)
      let waited = false
      for (;;) {
        const now = yield* Clock.currentTimeMillis
        const wait = Quota.waitMs(view.quota, tokens, now)
        if (wait <= 0) {
          view.quota = Quota.admit(view.quota, tokens, now)
          view.inFlight += 1
          return tokens
        }
        const tooLong = options.onLimit === "fail" || (options.maxWait !== undefined && wait > Duration.toMillis(options.maxWait))
        if (tooLong) {
          yield* options.record("rejected")
          return yield* Effect.fail(
            new RateLimited({ model: request.model, source: "client", retryAfter: Duration.millis(wait) }, true)
          )
        }
        if (!waited) yield* options.record("waited")
        waited = true
        yield* Effect.sleep(Duration.millis(wait))
      }
    })

  const observer = (model: string, estimate: number): Quota.QuotaObserver => (headers) =>
    Effect.map(Clock.currentTimeMillis, (now) => {
      const seen = Quota.fromHeaders(headers, now)
      if (seen === undefined) return
      const view = viewOf(model)
      const others = Math.max(0, view.inFlight - 1)
      view.quota = Quota.observed(view.quota, seen, others, others * estimate, now)
    })

  const leave = (model: string) => Effect.sync(() => void (viewOf(model).inFlight -= 1))

  return {
    complete: <A, E, R>(request: ChatRequest, call: Effect.Effect<A, E, R>): Effect.Effect<A, E | RateLimited, R> =>
      // Uninterruptible between the admission and the finalizer, so every call admitted is counted out once.
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(restore(enter(request)), (estimate) =>
          Effect.ensuring(restore(Quota.observe(call, observer(request.model, estimate))), leave(request.model)))),
    stream: <A, E, R>(request: ChatRequest, stream: Stream.Stream<A, E, R>): Stream.Stream<A, E | RateLimited, R> =>
      Stream.unwrap(Effect.map(enter(request), (estimate) =>
        Stream.ensuring(Quota.observeStream(stream, observer(request.model, estimate)), leave(request.model))))
  }
}
