import { afterAll, expect, it } from "@effect/vitest"
import { Cause, Context, Effect, Exit, Layer, Logger, Random, TestClock } from "effect"
import * as fc from "fast-check"
import { Redis as IORedis } from "ioredis"
import * as FakeLlm from "../../src/FakeLlm.js"
import { ChatRequest } from "../../src/Llm.js"
import * as LlmClient from "../../src/LlmClient.js"
import * as Redis from "../../src/Redis.js"
import { type Period, windowAt } from "../../src/internal/budgetPeriod.js"
import * as BudgetStore from "../../src/internal/budgetStore.js"
import { SETTLED_MS, TTL_MARGIN_MS } from "../../src/internal/redis/tokenBudget.js"
import * as TokenBudget from "../../src/TokenBudget.js"
import * as Tokenizer from "../../src/Tokenizer.js"
import { describeRedis, layerRedisTest, redisUrl, testPrefix } from "../support/redis.js"
import { tokenBudgetStoreContract } from "./TokenBudgetStore.contract.js"

const T0 = Date.UTC(2025, 2, 10)
const DAY = 86_400_000
const day = (start: number): TokenBudget.Window => ({ _tag: "Calendar", start, end: start + DAY })
const hourRolling: TokenBudget.Window = { _tag: "Rolling", durationMs: 3_600_000, bucketMs: 60_000 }
const tokens = (n: number): TokenBudget.Amount => ({ tokens: n, nanoUsd: 0 })

/** One "process": its own connection, the shared prefix. */
const storeLayer = (prefix: string) =>
  Redis.layerTokenBudgetStore.pipe(Layer.provideMerge(Redis.layer({ url: redisUrl, prefix })))

const storeOf = (prefix: string) =>
  Effect.map(Layer.build(storeLayer(prefix)), (context) => ({
    store: Context.get(context, TokenBudget.TokenBudgetStore),
    redis: Context.get(context, Redis.RedisClient)
  }))

const freshPrefix = testPrefix

/** A store over a closed connection: every command fails. */
const closedStore = Effect.gen(function* () {
  const client = new IORedis(redisUrl, { lazyConnect: true })
  client.disconnect()
  const context = yield* Layer.build(Redis.layerTokenBudgetStore).pipe(
    Effect.provideService(Redis.RedisClient, Redis.fromClient(client, freshPrefix()))
  )
  return Context.get(context, TokenBudget.TokenBudgetStore)
})

describeRedis("TokenBudgetStore (Redis)", () => {
  tokenBudgetStoreContract("redis", Redis.layerTokenBudgetStore.pipe(Layer.provide(layerRedisTest()), Layer.orDie))

  differentialSuite()

  it.scoped("two processes share one budget: 1000 concurrent fibers reserve → commit and never overshoot 50,000 tokens", () =>
    Effect.gen(function* () {
      const prefix = freshPrefix()
      const a = yield* storeOf(prefix)
      const b = yield* storeOf(prefix)
      expect(a.redis.client).not.toBe(b.redis.client)
      const limits = { tokens: 50_000 }
      const window = day(T0)
      const rounds = 3
      // each fiber runs `rounds` reserve → commit calls, so later reservations meet budget released by commits
      const outcomes = yield* Effect.forEach(
        Array.from({ length: 1000 }, (_, i) => i),
        (i) =>
          Effect.forEach(Array.from({ length: rounds }, (_, round) => round), (round) =>
            Effect.gen(function* () {
              const { store } = i % 2 === 0 ? a : b
              const id = `r${i}-${round}`
              const requested = yield* Random.nextIntBetween(100, 1500)
              const actual = Math.ceil(requested * (yield* Random.nextRange(0.2, 1)))
              const now = T0 + 10 * i + round
              const reserved = yield* store.reserve({
                key: "shared",
                reservationId: id,
                amount: tokens(requested),
                limits,
                window,
                now,
                expiresAt: now + 600_000
              })
              if (reserved._tag === "Rejected") return { _tag: "Rejected" as const, result: reserved }
              const committed = yield* store.commit({
                key: "shared",
                reservationId: id,
                actual: tokens(actual),
                limits,
                alertAt: [],
                window,
                now: now + 1
              })
              expect(committed.found).toBe(true)
              const held = (s: TokenBudget.Snapshot) => s.used.tokens + s.reserved.tokens
              return { _tag: "Committed" as const, actual, held: Math.max(held(reserved.snapshot), held(committed.snapshot)) }
            })),
        { concurrency: "unbounded" }
      ).pipe(Effect.withRandom(Random.make("budget-cross-process")))

      const all = outcomes.flat()
      const committed = all.flatMap((o) => o._tag === "Committed" ? [o] : [])
      const rejected = all.flatMap((o) => o._tag === "Rejected" ? [o.result] : [])
      const total = committed.reduce((sum, o) => sum + o.actual, 0)
      const maxHeld = Math.max(...committed.map((o) => o.held))
      const final = yield* b.store.usage({ key: "shared", window, now: T0 + 20_000 })
      // the read-back is exact and never above the limit
      expect(final.used.tokens).toBe(total)
      expect(final.reserved.tokens).toBe(0)
      expect(final.used.tokens).toBeLessThanOrEqual(50_000)
      // used + reserved, as every reserve and commit saw it, stayed within the limit
      expect(maxHeld).toBeLessThanOrEqual(50_000)
      // every refusal was honest
      for (const r of rejected) {
        if (r._tag === "Rejected") expect(r.requested).toBeGreaterThan(r.remaining)
      }
      expect(committed.length + rejected.length).toBe(3000)
      expect(rejected.length).toBeGreaterThan(0)
      // most of the budget was spent (typically 47,000–49,200 tokens: the rest is what the last refused requests,
      // each asking up to 1,500, could not use, plus what the reservations held at that moment left unused)
      expect(total).toBeGreaterThan(40_000)
      console.log(
        `cross-process budget: ${committed.length} committed, ${rejected.length} refused, committed total ${total} ` +
          `/ 50000 tokens, max used+reserved seen ${maxHeld}`
      )
    }), 30_000)

  it.scoped("a reservation made by one process is released by a commit from the other", () =>
    Effect.gen(function* () {
      const prefix = freshPrefix()
      const a = yield* storeOf(prefix)
      const b = yield* storeOf(prefix)
      const limits = { tokens: 1000 }
      yield* a.store.reserve({
        key: "k",
        reservationId: "x",
        amount: tokens(900),
        limits,
        window: day(T0),
        now: T0,
        expiresAt: T0 + 600_000
      })
      const refused = yield* b.store.reserve({
        key: "k",
        reservationId: "y",
        amount: tokens(200),
        limits,
        window: day(T0),
        now: T0 + 1,
        expiresAt: T0 + 600_001
      })
      expect(refused).toMatchObject({ _tag: "Rejected", requested: 200, remaining: 100 })
      const committed = yield* b.store.commit({
        key: "k",
        reservationId: "x",
        actual: tokens(300),
        limits,
        alertAt: [0.25],
        window: day(T0),
        now: T0 + 2
      })
      expect(committed).toMatchObject({ found: true, crossed: [{ unit: "tokens", threshold: 0.25 }] })
      expect(yield* a.store.usage({ key: "k", window: day(T0), now: T0 + 3 })).toMatchObject({
        used: { tokens: 300 },
        reserved: { tokens: 0 }
      })
    }))

  it.scoped("a commit delivered twice (its reply lost, then retried) is charged once, also after its lease ended", () =>
    Effect.gen(function* () {
      const { store } = yield* storeOf(freshPrefix())
      const now = T0 + 3_600_000
      const limits = { tokens: 1_000 }
      const reserve = (id: string, at: number) =>
        store.reserve({ key: "k", reservationId: id, amount: tokens(100), limits, window: day(T0), now: at, expiresAt: at + 1_000 })
      const commit = (id: string, at: number) =>
        store.commit({ key: "k", reservationId: id, actual: tokens(40), limits, alertAt: [], window: day(T0), now: at })
      yield* reserve("a", now)
      const first = yield* commit("a", now + 10)
      const repeat = yield* commit("a", now + 5_000) // the policy's retry, seconds later
      expect([first.found, repeat.found]).toEqual([true, false])
      expect(repeat.snapshot.used.tokens).toBe(40)
      // a lease that ended is charged its worst case; its late commit corrects it once, and the repeat charges nothing
      yield* reserve("b", now + 6_000)
      expect((yield* store.usage({ key: "k", window: day(T0), now: now + 8_000 })).used.tokens).toBe(140)
      yield* commit("b", now + 9_000)
      const late = yield* commit("b", now + 12_000)
      expect(late.snapshot.used.tokens).toBe(80)
      // an id committed longer ago than the window is unknown again: its commit charges what it says was spent
      const after = yield* commit("a", now + 10 + SETTLED_MS + 1)
      expect(after.snapshot.used.tokens).toBe(120)
    }))

  it.scoped("every key starts with the prefix and expires: period end / bucket expiry / lease, plus the margin", () =>
    Effect.gen(function* () {
      const prefix = freshPrefix()
      const { redis, store } = yield* storeOf(prefix)
      const now = T0 + 3_600_000
      yield* store.reserve({
        key: "cal",
        reservationId: "a",
        amount: tokens(10),
        limits: { tokens: 100 },
        window: day(T0),
        now,
        expiresAt: now + 600_000
      })
      yield* store.commit({
        key: "cal",
        reservationId: "b",
        actual: tokens(90),
        limits: { tokens: 100 },
        alertAt: [0.8],
        window: day(T0),
        now
      })
      yield* store.commit({
        key: "roll",
        reservationId: "c",
        actual: tokens(5),
        limits: { tokens: 100 },
        alertAt: [0.01],
        window: hourRolling,
        now
      })
      const keys = (yield* redis.use("KEYS", (c) => c.keys(`${prefix}*`))).sort()
      expect(keys).toEqual([
        `${prefix}budget:{cal}`,
        `${prefix}budget:{cal}:f`,
        `${prefix}budget:{cal}:l`,
        `${prefix}budget:{cal}:r`,
        `${prefix}budget:{cal}:s`,
        `${prefix}budget:{roll}`,
        `${prefix}budget:{roll}:b`,
        `${prefix}budget:{roll}:f`,
        `${prefix}budget:{roll}:s`
      ])
      for (const key of keys) {
        const ttl = yield* redis.use("PTTL", (c) => c.pttl(key))
        // calendar: the day ends 23 hours after `now`; rolling: the bucket of `now` expires 61 minutes after it
        const logical = key.includes("{cal}") ? T0 + DAY - now : 3_660_000
        expect(ttl).toBeGreaterThan(logical + TTL_MARGIN_MS - 5_000)
        expect(ttl).toBeLessThanOrEqual(logical + TTL_MARGIN_MS)
      }
      // Once nothing counts any more (the bucket expired by the caller's clock), the keys are deleted.
      const later = yield* store.usage({ key: "roll", window: hourRolling, now: now + 3_660_000 })
      expect(later.used.tokens).toBe(0)
      expect(yield* redis.use("KEYS", (c) => c.keys(`${prefix}budget:{roll}*`))).toEqual([])
    }))

  it.scoped("nano-USD sums stay exact up to 2^53 - 1 (Lua numbers are doubles; no 14-digit tostring)", () =>
    Effect.gen(function* () {
      const { store } = yield* storeOf(freshPrefix())
      const half = 4_503_599_627_370_495 // (2^53 - 1 - 1) / 2
      const limits = { nanoUsd: Number.MAX_SAFE_INTEGER }
      const commit = (id: string, nanoUsd: number, now: number) =>
        store.commit({ key: "big", reservationId: id, actual: { tokens: 0, nanoUsd }, limits, alertAt: [1], window: day(T0), now })
      expect((yield* commit("a", 123_456_789_012_345, T0)).snapshot.used.nanoUsd).toBe(123_456_789_012_345)
      yield* commit("b", half - 123_456_789_012_345, T0 + 1)
      const last = yield* commit("c", half + 1, T0 + 2)
      expect(last.snapshot.used.nanoUsd).toBe(Number.MAX_SAFE_INTEGER)
      expect(last.crossed).toEqual([{ unit: "usd", threshold: 1 }])
      const reserve = yield* store.reserve({
        key: "big2",
        reservationId: "r",
        amount: { tokens: 0, nanoUsd: 9_007_199_254_740_000 },
        limits,
        window: day(T0),
        now: T0,
        expiresAt: T0 + 1000
      })
      expect(reserve.snapshot.reserved.nanoUsd).toBe(9_007_199_254_740_000)
      const refused = yield* store.reserve({
        key: "big2",
        reservationId: "s",
        amount: { tokens: 0, nanoUsd: 992 },
        limits,
        window: day(T0),
        now: T0,
        expiresAt: T0 + 1000
      })
      expect(refused).toMatchObject({ _tag: "Rejected", unit: "usd", requested: 992, remaining: 991 })
    }))

  it.scoped("a Redis failure is a defect (the store methods have no error channel)", () =>
    Effect.gen(function* () {
      const store = yield* closedStore
      const exit = yield* Effect.exit(store.usage({ key: "k", window: day(T0), now: T0 }))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      if (Exit.isFailure(exit)) expect(Cause.squash(exit.cause)).toMatchObject({ _tag: "RedisError", operation: "EVALSHA" })
    }))

  const request = (user: string, maxTokens = 200) =>
    new ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hello" }], maxTokens, user })

  it.effect("TokenBudget.policy runs over the Redis store (LlmClient.layerWith + FakeLlm)", () => {
    const prefix = freshPrefix()
    const Live = LlmClient.layerWith(
      TokenBudget.policy({ scope: "user", limit: { tokens: 1000, usd: 1 }, period: "day", name: "redis-user-day" })
    ).pipe(
      Layer.provideMerge(FakeLlm.layer(FakeLlm.reply("ok", { usage: { inputTokens: 50, outputTokens: 100 } }))),
      Layer.provide(Layer.merge(Redis.layerTokenBudgetStore, Tokenizer.layerApproximate)),
      Layer.provideMerge(Redis.layer({ url: redisUrl, prefix })),
      Layer.orDie
    )
    return Effect.gen(function* () {
      yield* TestClock.setTime(T0)
      for (let i = 0; i < 6; i++) yield* LlmClient.complete(request("alice@example.com"))
      const error = yield* Effect.flip(LlmClient.complete(request("alice@example.com")))
      expect(error).toMatchObject({ _tag: "BudgetExceeded", scope: "redis-user-day", unit: "tokens", remaining: 100 })
      // another user has a budget of their own
      yield* LlmClient.complete(request("bob@example.com"))
      expect(yield* FakeLlm.calls).toHaveLength(7)
      const redis = yield* Redis.RedisClient
      const keys = yield* redis.use("KEYS", (c) => c.keys(`${prefix}*`))
      expect(keys.length).toBeGreaterThan(0)
      for (const key of keys) {
        expect(key.startsWith(`${prefix}budget:{redis-user-day|user|`)).toBe(true)
        expect(key).not.toContain("alice")
        expect(key).not.toContain("bob")
        expect(yield* redis.use("PTTL", (c) => c.pttl(key))).toBeGreaterThan(0)
      }
    }).pipe(Effect.provide(Live))
  })

  it.effect("through the policy: a commit that never reaches Redis is retried, then its lease end charges the worst case", () => {
    const prefix = freshPrefix()
    return Effect.gen(function* () {
      yield* TestClock.setTime(T0)
      const good = yield* storeOf(prefix)
      // reserve and usage reach Redis; commit and refund go through a connection that is down
      const down = yield* closedStore
      const store = TokenBudget.TokenBudgetStore.of({ ...good.store, commit: down.commit, refund: down.refund })
      const budget = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 1000 }, period: "day" }).pipe(
        Effect.provideService(TokenBudget.TokenBudgetStore, store),
        Effect.provide(Tokenizer.layerApproximate)
      )
      const fake = yield* FakeLlm.make(FakeLlm.reply("ok", { usage: { inputTokens: 5, outputTokens: 5 } }))
      const client = LlmClient.decorate(fake.client, budget)
      const logs: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        logs.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
      })
      const response = yield* client.complete(request("u", 600)).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      expect(response.content).toBe("ok")
      expect(logs).toEqual(["WARN TokenBudget could not settle a reservation; retrying in the background"])
      const held = (yield* budget.usage()).reserved
      expect(held).toBeGreaterThan(600)
      expect((yield* Effect.flip(client.complete(request("u", 600))))._tag).toBe("BudgetExceeded")
      yield* TestClock.adjust("10 seconds")
      expect(logs.at(-1)).toBe("WARN TokenBudget could not settle a reservation; its lease end will charge the worst case")
      yield* TestClock.adjust("10 minutes")
      // never zero: the usage that could not be committed stays charged at the reservation's worst case
      expect(yield* budget.usage()).toMatchObject({ used: held, reserved: 0 })

      // and a reserve that cannot reach Redis fails the call without calling the provider
      const noReserve = yield* TokenBudget.policy({ scope: "global", limit: { tokens: 1000 }, period: "day" }).pipe(
        Effect.provideService(TokenBudget.TokenBudgetStore, down),
        Effect.provide(Tokenizer.layerApproximate)
      )
      const before = (yield* fake.recorder.calls).length
      const exit = yield* Effect.exit(LlmClient.decorate(fake.client, noReserve).complete(request("u")))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(yield* fake.recorder.calls).toHaveLength(before)
    }).pipe(Effect.scoped)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Differential: the Lua scripts and the in-memory ledger give the same results for the same operations

type Op =
  | { readonly _tag: "reserve"; readonly id: number; readonly tokens: number; readonly nanoUsd: number; readonly lease: number }
  | { readonly _tag: "commit"; readonly id: number; readonly tokens: number; readonly nanoUsd: number }
  | { readonly _tag: "refund"; readonly id: number }
  | { readonly _tag: "usage" }

const opArbitrary: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    _tag: fc.constant("reserve" as const),
    id: fc.nat(5),
    tokens: fc.nat(400),
    nanoUsd: fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: 200_000_000_000_000 })),
    // whole seconds, so that steps often land exactly on a lease end
    lease: fc.oneof(fc.integer({ min: 1, max: 90 }).map((s) => s * 1000), fc.integer({ min: 1, max: 90_000 }))
  }),
  fc.record({
    _tag: fc.constant("commit" as const),
    id: fc.nat(5),
    tokens: fc.nat(400),
    nanoUsd: fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: 200_000_000_000_000 }))
  }),
  fc.record({ _tag: fc.constant("refund" as const), id: fc.nat(5) }),
  fc.record({ _tag: fc.constant("usage" as const) })
)

const scenarioArbitrary = fc.record({
  period: fc.constantFrom<Period>(
    { _tag: "Calendar", unit: "minute" },
    { _tag: "Rolling", durationMs: 60_000, buckets: 6 },
    { _tag: "Rolling", durationMs: 50_000, buckets: 7 }
  ),
  limits: fc.record(
    { tokens: fc.nat(1500), nanoUsd: fc.integer({ min: 0, max: 4_000_000_000_000_000 }) },
    { requiredKeys: [] }
  ),
  alertAt: fc.subarray([0.25, 0.5, 0.8, 1]),
  start: fc.oneof(fc.constant(T0), fc.integer({ min: T0, max: T0 + DAY })),
  steps: fc.array(
    fc.record({
      op: opArbitrary,
      // ms since the previous step; negative: a caller whose clock lags
      advance: fc.oneof(
        fc.integer({ min: -60, max: 90 }).map((s) => s * 1000),
        fc.integer({ min: 0, max: 3_000 }),
        fc.integer({ min: -20_000, max: 90_000 })
      )
    }),
    { minLength: 1, maxLength: 40 }
  )
})

let differentialCounter = 0

// 40 steps of at most 2e14 nano-USD each stay below 2^53, where both stores' sums are exact

function differentialSuite() {
  const client = new IORedis(redisUrl)
  afterAll(() => client.quit().then(() => undefined))
  const redisStore = Effect.runSync(
    Effect.scoped(Effect.map(Layer.build(Redis.layerTokenBudgetStore), (ctx) => Context.get(ctx, TokenBudget.TokenBudgetStore)))
      .pipe(Effect.provideService(Redis.RedisClient, Redis.fromClient(client, freshPrefix())))
  )

  const apply = (store: TokenBudget.StoreService, key: string, scenario: typeof scenarioArbitrary extends fc.Arbitrary<infer A> ? A : never) =>
    Effect.gen(function* () {
      let now = scenario.start
      const results: Array<unknown> = []
      for (const { advance, op } of scenario.steps) {
        now += advance
        const window = windowAt(scenario.period, now)
        const id = `r${op._tag === "usage" ? 0 : op.id}`
        switch (op._tag) {
          case "reserve":
            results.push(yield* store.reserve({
              key,
              reservationId: id,
              amount: { tokens: op.tokens, nanoUsd: op.nanoUsd },
              limits: scenario.limits,
              window,
              now,
              expiresAt: now + op.lease
            }))
            break
          case "commit":
            results.push(yield* store.commit({
              key,
              reservationId: id,
              actual: { tokens: op.tokens, nanoUsd: op.nanoUsd },
              limits: scenario.limits,
              alertAt: scenario.alertAt,
              window,
              now
            }))
            break
          case "refund":
            results.push(yield* store.refund({ key, reservationId: id, window, now }))
            break
          case "usage":
            results.push(yield* store.usage({ key, window, now }))
        }
      }
      return results
    })

  it("random operation sequences give the memory store's results exactly (calendar and rolling, leases, lagging clocks, alerts)", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArbitrary, async (scenario) => {
        const key = `differential:${++differentialCounter}`
        // the memory ledger with the scripts' repeat window (the memory store itself needs none)
        const memory = await Effect.runPromise(apply(BudgetStore.make(100_000, SETTLED_MS), key, scenario))
        const redis = await Effect.runPromise(apply(redisStore, key, scenario))
        expect(redis).toEqual(memory)
      }),
      { numRuns: 150, seed: 20250310 }
    )
  }, 30_000)
}
