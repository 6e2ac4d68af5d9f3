/**
 * Redis for the store tests: `REDIS_URL` (default redis://127.0.0.1:6379). When Redis does not answer, the Redis
 * suites fail under CI (any `CI` other than empty, "0" or "false") and are reported as not run, loudly, elsewhere.
 */
import { randomUUID } from "node:crypto"
import { Effect, Layer } from "effect"
import { Redis as IORedis } from "ioredis"
import { afterAll, describe, it } from "vitest"
import * as Redis from "../../src/Redis.js"

export const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

/** True on a CI runner: `CI` is set to anything but an empty string, "0" or "false" (any case). */
export const isCi = (value: string | undefined): boolean =>
  value !== undefined && !["", "0", "false"].includes(value.trim().toLowerCase())

const probe = async (): Promise<boolean> => {
  const client = new IORedis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000, retryStrategy: () => null })
  try {
    await client.connect()
    return (await client.ping()) === "PONG"
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

export const redisAvailable: boolean = await probe()

const prefixes = new Set<string>()

/** A fresh key prefix (`test:<uuid>:`); its keys are deleted after the enclosing `describeRedis` suite. */
export const testPrefix = (): string => {
  const prefix = `test:${randomUUID()}:`
  prefixes.add(prefix)
  return prefix
}

/** Deletes every key under the prefixes handed out so far (SCAN, then UNLINK): test keys would otherwise stay until
 * their TTLs, up to weeks for some. */
const deleteTestKeys = async (): Promise<void> => {
  const client = new IORedis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  try {
    await client.connect()
    for (const prefix of prefixes) {
      let cursor = "0"
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000)
        cursor = next
        if (keys.length > 0) await client.unlink(...keys)
      } while (cursor !== "0")
      prefixes.delete(prefix)
    }
  } finally {
    client.disconnect()
  }
}

/** A describe for suites that need Redis. */
export const describeRedis = (name: string, body: () => void): void => {
  if (redisAvailable) {
    describe(name, () => {
      body()
      afterAll(deleteTestKeys)
    })
    return
  }
  if (isCi(process.env.CI)) {
    describe(name, () => {
      it("needs Redis", () => {
        throw new Error(`Redis is not reachable at ${redisUrl}; the Redis store suites cannot run in CI without it`)
      })
    })
    return
  }
  console.warn(`\n*** Redis is not reachable at ${redisUrl}: "${name}" was NOT RUN ***\n`)
  describe.skip(name, body)
}

/** A RedisClient layer with a prefix of its own (see {@link testPrefix}), so suites never see each other's keys. */
export const layerRedisTest = (): Layer.Layer<Redis.RedisClient, Redis.RedisError> =>
  Redis.layer({ url: redisUrl, prefix: testPrefix() })

/** Every key under a prefix, with its remaining time to live (ms). */
export const keysUnder = async (
  prefix: string
): Promise<ReadonlyArray<{ readonly key: string; readonly pttl: number }>> => {
  const client = new IORedis(redisUrl)
  try {
    const keys = await client.keys(`${prefix}*`)
    return await Promise.all(keys.map(async (key) => ({ key, pttl: await client.pttl(key) })))
  } finally {
    client.disconnect()
  }
}

/** A RedisClient that cannot reach any server: every command fails at once (for failure-behaviour tests). */
export const layerRedisUnreachable: Layer.Layer<Redis.RedisClient> = Layer.scoped(
  Redis.RedisClient,
  Effect.acquireRelease(
    Effect.sync(() =>
      Redis.fromClient(
        new IORedis("redis://127.0.0.1:1", {
          lazyConnect: true,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 0,
          retryStrategy: () => null
        }),
        "down:"
      )
    ),
    (redis) => Effect.sync(() => redis.client.disconnect())
  )
)
