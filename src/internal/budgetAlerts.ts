/**
 * TokenBudget's alerts: the hub budgets publish each threshold crossing to, and the ways to read it.
 */
import { Context, Effect, Layer, PubSub, type Queue, type Scope, Stream } from "effect"
import type { AlertEvent } from "./tokenBudget.js"

/** The alert hub Tag (documented as `TokenBudget.TokenBudgetAlerts`). */
export class TokenBudgetAlerts extends Context.Tag("effect-llm-resilience/TokenBudgetAlerts")<
  TokenBudgetAlerts,
  PubSub.PubSub<AlertEvent>
>() {}

/** An unbounded hub, shut down with the layer. */
export const layer: Layer.Layer<TokenBudgetAlerts> = Layer.scoped(
  TokenBudgetAlerts,
  Effect.acquireRelease(PubSub.unbounded<AlertEvent>(), PubSub.shutdown)
)

/** Every alert published from now on. */
export const stream: Stream.Stream<AlertEvent, never, TokenBudgetAlerts> = Stream.unwrap(
  Effect.map(TokenBudgetAlerts, (hub) => Stream.fromPubSub(hub))
)

/** A subscription taken now, ended with the scope. */
export const subscribe: Effect.Effect<Queue.Dequeue<AlertEvent>, never, Scope.Scope | TokenBudgetAlerts> =
  Effect.flatMap(TokenBudgetAlerts, PubSub.subscribe)
