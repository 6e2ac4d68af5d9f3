/**
 * Redis for the store tests: `REDIS_URL` (default redis://127.0.0.1:6379). When Redis does not answer, the Redis
 * suites fail under CI (CI=true) and are reported as not run, loudly, elsewhere.
 */
import { randomUUID } from "node:crypto"
import { Redis as IORedis } from "ioredis"
import { describe, it } from "vitest"
import * as Redis from "../../src/Redis.js"

export const redisUrl = process.env.REDIS_URL ?? "redis://127.0.0.1:6379"

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

/** A describe for suites that need Redis. */
export const describeRedis = (name: string, body: () => void): void => {
  if (redisAvailable) {
    describe(name, body)
    return
  }
  if (process.env.CI === "true" || process.env.CI === "1") {
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

/** A RedisClient layer with a prefix of its own, so suites never see each other's keys. */
export const layerRedisTest = () => Redis.layer({ url: redisUrl, prefix: `test:${randomUUID()}:` })
