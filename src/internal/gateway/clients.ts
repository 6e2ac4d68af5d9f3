/**
 * The clients the gateway calls through: per gateway model, the route's pipeline with its router over every
 * deployment; per (key, model), that pipeline with the key's own budgets and rate limit spliced in after the cache,
 * idempotency and tier steps (so a replay never spends), built once and kept in a bounded least-recently-used map.
 *
 * The route's policies are built once and shared by every key (a bulkhead or a retry budget is the route's, not a
 * key's); the policies below the router in `Pipeline.order` (breaker, rate limit, bulkhead, timeout) wrap each
 * deployment's client, so they guard each upstream call. Key policies are named after the key id, so every replica
 * shares their state through the store.
 */
import { type Context, Duration, Effect, Stream } from "effect"
import type { InvalidOptions } from "../../InvalidOptions.js"
import * as LlmClient from "../../LlmClient.js"
import { ModelNotFound } from "../../LlmError.js"
import * as Pipeline from "../../Pipeline.js"
import * as RateLimit from "../../RateLimit.js"
import * as Router from "../../Router.js"
import * as TokenBudget from "../../TokenBudget.js"
import { calendarBounds } from "../budgetPeriod.js"
import type { Resolved } from "./config.js"
import type { KeyRecord } from "./keys.js"

/** Every store a gateway pipeline may need. */
export type Stores = Pipeline.Requirements<Pipeline.Options>

const baseName = (name: string): string => name.replace(/\(.*$/, "")
const routerRank = Pipeline.order.indexOf("Router")
const rank = (policy: LlmClient.Policy): number => (Pipeline.order as ReadonlyArray<string>).indexOf(baseName(policy.name))
/** The steps a key's limits go after: a cache hit or an idempotent replay costs the key nothing. */
const replaySteps: ReadonlySet<string> = new Set(["ResponseCache", "Idempotency", "ModelTier"])

/** One gateway model, built once. */
export interface Route {
  /** The route's policies above the router, split where a key's own go. */
  readonly head: ReadonlyArray<LlmClient.Policy>
  readonly tail: ReadonlyArray<LlmClient.Policy>
  readonly router: LlmClient.Policy
  /** The period of each budget the route's pipeline names, to tell a refused client when it resets. */
  readonly periods: ReadonlyMap<string, TokenBudget.PeriodInput>
}

/** Requests for a model the router has no deployment of end here. */
const noSuchModel: LlmClient.Service = {
  complete: (request) => Effect.fail(new ModelNotFound({ model: request.model })),
  stream: (request) => Stream.fail(new ModelNotFound({ model: request.model }))
}

const budgetPeriods = (options: Pipeline.Options): ReadonlyMap<string, TokenBudget.PeriodInput> =>
  new Map((options.budgets ?? []).flatMap((b) => {
    const name = b.name ?? (typeof b.scope === "string" && typeof b.period === "string" ? `${b.scope}-${b.period}` : undefined)
    return name === undefined ? [] : [[name, b.period] as const]
  }))

/** Builds a route: its pipeline, split at the router, with the router over every deployment of every model. */
export const buildRoute = (
  config: Resolved,
  model: string,
  upstreams: ReadonlyMap<string, LlmClient.Service>
): Effect.Effect<Route, InvalidOptions, Stores> =>
  Effect.gen(function* () {
    const route = config.models.get(model)!
    const policies = yield* Pipeline.policies(route.pipeline)
    const above = policies.filter((p) => rank(p) < routerRank)
    const below = policies.filter((p) => rank(p) > routerRank)
    const cut = above.findIndex((p) => !replaySteps.has(baseName(p.name)))
    const split = cut === -1 ? above.length : cut
    // Every model's deployments, so that a fallback to another gateway model is routed too; one router name, so
    // that each deployment's state (cooldowns, latency, load) is one across routes and replicas.
    const deployments = [...config.models].flatMap(([name, r]) =>
      r.deployments.map((d): Router.Deployment => ({
        id: d.id,
        model: name,
        providerModel: d.model,
        client: LlmClient.decorate(upstreams.get(d.upstream)!, ...below)
      })))
    const router = yield* Router.policy({ name: "gateway", deployments, strategy: route.strategy })
    return { head: above.slice(0, split), tail: above.slice(split), router, periods: budgetPeriods(route.pipeline) }
  })

/** The name of a key's `i`-th budget and of its rate limit: the key id, never its secret. */
export const keyBudgetName = (key: KeyRecord, i: number): string => `key:${key.id}:${i}`
export const keyRateLimitName = (key: KeyRecord): string => `key:${key.id}`

/** The options of a key's budgets (as `TokenBudget.policy` and `Embeddings.tokenBudget` take them), in order. */
export const keyBudgetOptions = (key: KeyRecord): ReadonlyArray<TokenBudget.Options> =>
  (key.budgets ?? []).map((b, i) => ({
    scope: "global",
    name: keyBudgetName(key, i),
    period: b.period as TokenBudget.PeriodInput,
    limit: { ...(b.tokens === undefined ? {} : { tokens: b.tokens }), ...(b.usd === undefined ? {} : { usd: b.usd }) }
  }))

/** The options of a key's rate limit (refusing at once), or none when it has no limit. */
export const keyRateLimitOptions = (key: KeyRecord): ReadonlyArray<RateLimit.Options> => {
  const limit = key.rateLimit
  return limit === undefined || (limit.rpm === undefined && limit.tpm === undefined)
    ? []
    : [{ rpm: limit.rpm, tpm: limit.tpm, per: "global", onLimit: "fail", name: keyRateLimitName(key) }]
}

/** The key's own policies: each budget a `TokenBudget` and the rate limit a `RateLimit`, all shared by every replica. */
export const keyPolicies = (
  key: KeyRecord
): Effect.Effect<ReadonlyArray<LlmClient.Policy>, InvalidOptions, Stores> =>
  Effect.map(
    Effect.all([
      Effect.forEach(keyBudgetOptions(key), (options) => TokenBudget.policy(options)),
      Effect.forEach(keyRateLimitOptions(key), (options) => RateLimit.policy(options))
    ]),
    ([budgets, rate]) => [...budgets, ...rate]
  )

/** The route's policies for one key: the key's own after the replay steps, before everything that spends. */
export const policiesFor = (route: Route, keyOwn: ReadonlyArray<LlmClient.Policy>): ReadonlyArray<LlmClient.Policy> => [
  ...route.head,
  ...keyOwn,
  ...route.tail,
  route.router
]

/** The route's client for one key. */
export const clientFor = (route: Route, keyOwn: ReadonlyArray<LlmClient.Policy>): LlmClient.Service =>
  LlmClient.decorate(noSuchModel, ...policiesFor(route, keyOwn))

/** The wait until the named budget's period ends, for a calendar period (a rolling window has no one end). */
export const budgetResetIn = (
  route: Route,
  key: KeyRecord,
  now: number
) =>
(name: string): Duration.Duration | undefined => {
  const own = (key.budgets ?? []).findIndex((_, i) => keyBudgetName(key, i) === name)
  const period = own >= 0 ? key.budgets![own].period : route.periods.get(name)
  if (typeof period !== "string") return undefined
  return Duration.millis(Math.max(0, calendarBounds(period, now).end - now))
}

/** A bounded least-recently-used map. */
export class Lru<V> {
  private readonly entries = new Map<string, V>()
  constructor(readonly capacity: number) {}
  get size(): number {
    return this.entries.size
  }
  get(key: string): V | undefined {
    const value = this.entries.get(key)
    if (value !== undefined) {
      this.entries.delete(key)
      this.entries.set(key, value)
    }
    return value
  }
  set(key: string, value: V): void {
    this.entries.delete(key)
    this.entries.set(key, value)
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value as string)
  }
}

/** The cache key of a (key, model) client: a key whose limits change gets a new client. */
export const clientKey = (key: KeyRecord, model: string): string =>
  JSON.stringify([key.id, model, key.budgets ?? null, key.rateLimit ?? null])

/** The (key, model) clients of a gateway, built on first use with the stores of `context`. */
export const makeClients = (
  routes: ReadonlyMap<string, Route>,
  capacity: number,
  context: Context.Context<Stores>
) => {
  const cache = new Lru<LlmClient.Service>(capacity)
  return {
    cache,
    get: (key: KeyRecord, model: string): Effect.Effect<LlmClient.Service, InvalidOptions> =>
      Effect.suspend(() => {
        const id = clientKey(key, model)
        const found = cache.get(id)
        if (found !== undefined) return Effect.succeed(found)
        return keyPolicies(key).pipe(
          Effect.map((own) => clientFor(routes.get(model)!, own)),
          Effect.tap((client) => Effect.sync(() => cache.set(id, client))),
          Effect.provide(context)
        )
      })
  }
}
