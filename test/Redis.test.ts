import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
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
      const error = yield* Effect.flip(
        Layer.build(Redis.layer({ url: "redis://:s3cret@127.0.0.1:1", retryStrategy: () => null, lazyConnect: false }))
          .pipe(Effect.scoped)
      )
      expect(error._tag).toBe("RedisError")
      expect(JSON.stringify(error)).not.toContain("s3cret")
      expect(error.message).not.toContain("s3cret")
    }))
})

describe("describeRedis", () => {
  it("treats any CI value but empty, 0 or false as CI, where a missing Redis fails the suite instead of skipping it", () => {
    expect(["true", "1", "True", "yes", "github"].map((v) => isCi(v))).toEqual([true, true, true, true, true])
    expect([undefined, "", "0", "false", "FALSE"].map((v) => isCi(v))).toEqual([false, false, false, false, false])
  })
})
