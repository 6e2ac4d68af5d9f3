import { describe, expect, it, vi } from "@effect/vitest"
import { Effect, HashMap, Layer, Logger } from "effect"
import * as Redis from "../src/Redis.js"
import { describeRedis, isCi, layerRedisTest } from "./support/redis.js"

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
})

describe("describeRedis", () => {
  it("treats any CI value but empty, 0 or false as CI, where a missing Redis fails the suite instead of skipping it", () => {
    expect(["true", "1", "True", "yes", "github"].map((v) => isCi(v))).toEqual([true, true, true, true, true])
    expect([undefined, "", "0", "false", "FALSE"].map((v) => isCi(v))).toEqual([false, false, false, false, false])
  })
})
