import { describe, expect, it } from "vitest"
import { Either, Redacted } from "effect"
import { parse, statusOf, table } from "../../src/internal/gateway/keysCli.js"
import type { KeyRecord } from "../../src/internal/gateway/keys.js"

const problemsOf = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) => {
  const parsed = parse(argv, env)
  return Either.isLeft(parsed) ? parsed.left.problems : []
}

describe("gateway keys: the parser", () => {
  it("create with every option becomes generate's options and a target", () => {
    const parsed = parse([
      "create", "--tenant", "acme", "--name=ci", "--models", "a, b", "--budget-tokens", "1000", "--budget-usd", "2.5",
      "--period", "6 hours", "--rpm", "60", "--tpm", "900", "--ttl", "30 days", "--file", "k.json"
    ])
    expect(parsed).toEqual(Either.right({
      _tag: "create",
      target: { _tag: "file", path: "k.json" },
      options: {
        tenant: "acme", name: "ci", models: ["a", "b"], budgets: [{ tokens: 1000, usd: 2.5, period: { rolling: "6 hours" } }],
        rateLimit: { rpm: 60, tpm: 900 }, expiresAt: undefined, ttl: "30 days"
      }
    }))
  })

  it("the store: --redis, else --file, else REDIS_URL, else keys.json; the prefix from --prefix or REDIS_PREFIX", () => {
    const targetOf = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) => {
      const parsed = parse(["list", ...argv], env)
      if (Either.isLeft(parsed) || parsed.right._tag !== "list") throw new Error(JSON.stringify(parsed))
      const target = parsed.right.target
      return target._tag === "file" ? target : { ...target, url: Redacted.value(target.url) }
    }
    expect(targetOf([])).toEqual({ _tag: "file", path: "keys.json" })
    expect(targetOf([], { REDIS_URL: "redis://r:6379" })).toEqual({ _tag: "redis", url: "redis://r:6379", prefix: "llm:" })
    expect(targetOf(["--file", "f.json"], { REDIS_URL: "redis://r:6379" })).toEqual({ _tag: "file", path: "f.json" })
    expect(targetOf(["--redis", "redis://x", "--prefix", "gw:"], { REDIS_PREFIX: "no:" })).toEqual({ _tag: "redis", url: "redis://x", prefix: "gw:" })
    expect(targetOf([], { REDIS_URL: "redis://r", REDIS_PREFIX: "env:" })).toMatchObject({ prefix: "env:" })
  })

  it("every problem is listed, not only the first", () => {
    expect(problemsOf(["create", "--rpm", "--tpm", "x", "--nope", "--budget-usd", "1", "--budget-usd", "2", "extra"])).toEqual([
      "--rpm needs a value",
      `Unknown option "--nope"`,
      "--budget-usd is given twice",
      `Unexpected argument(s): "extra"`,
      "--tenant T is required",
      `--tpm: "x" is not a number`
    ])
    expect(problemsOf(["revoke", "a", "b", "--prefix", "p"])).toEqual(["--prefix applies to Redis: add --redis URL", "revoke takes one id, got 2"])
    expect(problemsOf(["create", "--tenant", "t", "--ttl", "1 day", "--expires", "2099-01-01T00:00:00Z"])).toContain(
      "--ttl and --expires exclude each other: give one"
    )
    expect(problemsOf(["revoke"])).toEqual(["revoke needs the key's id: gateway keys revoke key_…"])
    expect(problemsOf(["create", "--tenant", "t", "--expires", "2027-13-45"])).toEqual([
      `--expires: "2027-13-45" is not an ISO 8601 time (e.g. 2027-01-01T00:00:00Z)`
    ])
  })

  it("help, and an unknown command", () => {
    for (const argv of [[], ["help"], ["--help"], ["create", "--help"]]) expect(parse(argv)).toEqual(Either.right({ _tag: "help" }))
    expect(problemsOf(["delete"])).toEqual([`Unknown command "delete" (expected create, list or revoke)`])
  })
})

describe("gateway keys: the list table", () => {
  const records: ReadonlyArray<KeyRecord> = [
    {
      id: "key_aaaaaaaaaaaa", tenant: "acme", name: "ci", hash: "f".repeat(64), createdAt: Date.parse("2026-01-01T00:00:00Z"),
      models: ["gpt-4o"], budgets: [{ tokens: 10, usd: 1, period: "day" }, { tokens: 5, period: { rolling: "6 hours" } }],
      rateLimit: { rpm: 60 }
    },
    {
      id: "key_bbbbbbbbbbbb", tenant: "beta", hash: "e".repeat(64), createdAt: Date.parse("2026-01-02T00:00:00Z"),
      expiresAt: Date.parse("2026-02-01T00:00:00Z")
    },
    {
      id: "key_cccccccccccc", tenant: "acme", hash: "d".repeat(64), createdAt: 0, revokedAt: Date.parse("2026-01-03T00:00:00Z")
    }
  ]

  it("one row a key with its limits and status, never its hash", () => {
    const text = table(records, Date.parse("2026-03-01T00:00:00Z"))
    const lines = text.split("\n")
    expect(lines[0].split(/\s+/)).toEqual(["ID", "TENANT", "NAME", "MODELS", "LIMITS", "CREATED", "EXPIRES", "STATUS"])
    expect(lines[1]).toMatch(/^key_aaaaaaaaaaaa\s+acme\s+ci\s+gpt-4o\s+10 tokens\/day, \$1\/day, 5 tokens\/rolling 6 hours, 60 rpm\s+2026-01-01T00:00:00Z\s+never\s+active$/)
    expect(lines[2]).toMatch(/beta\s+-\s+\*\s+-\s+2026-01-02T00:00:00Z\s+2026-02-01T00:00:00Z\s+expired$/)
    expect(lines[3]).toMatch(/revoked 2026-01-03T00:00:00Z$/)
    for (const r of records) expect(text).not.toContain(r.hash)
  })

  it("the status at a time: revoked from revokedAt, expired from expiresAt", () => {
    const key = records[1]
    expect(statusOf(key, key.expiresAt! - 1)).toBe("active")
    expect(statusOf(key, key.expiresAt!)).toBe("expired")
    expect(statusOf({ ...key, revokedAt: 5 }, 5)).toBe("revoked 1970-01-01T00:00:00Z")
  })
})
