import { describe, expect, it, vi } from "@effect/vitest"
import { randomUUID } from "node:crypto"
import * as net from "node:net"
import { Context, Effect, HashMap, Layer, Logger } from "effect"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as TokenBudget from "../src/TokenBudget.js"
import * as Redis from "../src/Redis.js"
import { describeRedis, isCi, layerRedisTest, redisUrl, testPrefix } from "./support/redis.js"

describeRedis("RedisClient", () => {
  it.scoped("pings, runs scripts (EVAL on first use, EVALSHA after) and prefixes nothing by itself", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.RedisClient
      expect(yield* redis.use("PING", (c) => c.ping())).toBe("PONG")
      const incr = Redis.script(`return redis.call("INCRBY", KEYS[1], ARGV[1])`)
      yield* redis.use("SCRIPT FLUSH", (c) => c.script("FLUSH"))
      const key = `${redis.prefix}counter`
      expect(yield* redis.run(incr, [key], [2])).toBe(2)
      expect(yield* redis.run(incr, [key], [3])).toBe(5)
      yield* redis.use("DEL", (c) => c.del(key))
      expect(redis.prefix.startsWith("test:")).toBe(true)
    }).pipe(Effect.provide(layerRedisTest())))

  it.live("every store over one Redis.layer uses its one connection, closed when the layer is released", () =>
    Effect.gen(function* () {
      const name = `conn-${randomUUID()}`
      const inspector = yield* Layer.build(layerRedisTest()).pipe(Effect.map((ctx) => Context.get(ctx, Redis.RedisClient)))
      const connections = Effect.map(
        inspector.use("CLIENT LIST", (c) => c.client("LIST") as Promise<string>),
        (list) => list.split("\n").filter((line) => line.includes(`name=${name} `)).length
      )
      const during = yield* Effect.scoped(Effect.gen(function* () {
        const context = yield* Layer.build(
          Redis.layerStores.pipe(Layer.provideMerge(Redis.layer({ url: redisUrl, prefix: testPrefix(), connectionName: name })))
        )
        // a state change on the breaker, a cache write, a budget step: every store at work
        const breaker = Context.get(context, CircuitBreaker.CircuitBreakerStore)
        const config: CircuitBreaker.Config = {
          failureThreshold: 1,
          failureRate: null,
          slowCall: null,
          window: null,
          minimumCalls: 10,
          halfOpenAfter: { initialMs: 10_000, maxMs: 10_000, factor: 1 },
          halfOpenProbes: 1,
          probeTimeoutMs: 60_000
        }
        const admission = yield* breaker.admit("k", 0, config)
        if (admission._tag === "Admitted") yield* breaker.record("k", 1, config, admission.ticket, "failure")
        expect((yield* breaker.admit("k", 2, config))._tag).toBe("Rejected")
        yield* Context.get(context, TokenBudget.TokenBudgetStore).usage({
          key: "k",
          window: { _tag: "Calendar", start: 0, end: 60_000 },
          now: 1
        })
        return yield* connections
      }))
      expect(during).toBe(1)
      expect(yield* connections).toBe(0)
    }).pipe(Effect.scoped))

  it.scoped("a script error is a RedisError", () =>
    Effect.gen(function* () {
      const redis = yield* Redis.RedisClient
      const error = yield* Effect.flip(redis.run(Redis.script(`return redis.call("NOPE")`), [], []))
      expect(error._tag).toBe("RedisError")
      expect(error.operation).toBe("EVALSHA")
    }).pipe(Effect.provide(layerRedisTest())))
})

describe("Redis.layer", () => {
  it.live("a server that does not answer fails the layer with a RedisError that does not show the URL", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const capture = Logger.make(({ annotations, logLevel, message }) => {
        logs.push(`${logLevel.label} ${JSON.stringify(message)} ${JSON.stringify([...HashMap.toEntries(annotations)])}`)
      })
      const stderr = vi.spyOn(console, "error").mockImplementation(() => undefined)
      const error = yield* Effect.flip(
        Layer.build(Redis.layer({ url: "redis://:s3cret@127.0.0.1:1", retryStrategy: (n) => (n < 3 ? 1 : null) }))
          .pipe(Effect.scoped, Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      )
      const printed = stderr.mock.calls.length
      stderr.mockRestore()
      expect(error._tag).toBe("RedisError")
      expect(JSON.stringify(error)).not.toContain("s3cret")
      expect(error.message).not.toContain("s3cret")
      // three failed connection attempts: one warning through the Effect logger, nothing printed by the driver
      expect(logs).toHaveLength(1)
      expect(logs[0]).toContain("WARN")
      expect(logs[0]).toContain("ECONNREFUSED")
      expect(logs[0]).not.toContain("s3cret")
      expect(printed).toBe(0)
    }))

  it.live("releasing the layer does not hang on a server that stopped answering (QUIT is given a second)", () =>
    Effect.gen(function* () {
      // A "server" that answers the driver's start-up commands (CLIENT SETINFO, PING), then nothing (not QUIT).
      const sockets = new Set<net.Socket>()
      const server = yield* Effect.acquireRelease(
        Effect.async<net.Server>((resume) => {
          const s = net.createServer((socket) => {
            sockets.add(socket)
            socket.on("error", () => undefined)
            socket.on("data", (data) => {
              for (const command of data.toString().split("*").slice(1)) {
                if (/SETINFO/i.test(command)) socket.write("+OK\r\n")
                else if (/PING/i.test(command)) socket.write("+PONG\r\n")
              }
            })
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) =>
          Effect.async<void>((resume) => {
            for (const socket of sockets) socket.destroy()
            s.close(() => resume(Effect.void))
          })
      )
      const { port } = server.address() as net.AddressInfo
      const started = Date.now()
      yield* Layer.build(
        Redis.layer({ url: `redis://127.0.0.1:${port}`, enableReadyCheck: false, retryStrategy: () => null })
      ).pipe(Effect.scoped)
      expect(Date.now() - started).toBeLessThan(5_000)
      expect(Date.now() - started).toBeGreaterThanOrEqual(900)
    }).pipe(Effect.scoped))
})

describe("describeRedis", () => {
  it("treats any CI value but empty, 0 or false as CI, where a missing Redis fails the suite instead of skipping it", () => {
    expect(["true", "1", "True", "yes", "github"].map((v) => isCi(v))).toEqual([true, true, true, true, true])
    expect([undefined, "", "0", "false", "FALSE"].map((v) => isCi(v))).toEqual([false, false, false, false, false])
  })
})
