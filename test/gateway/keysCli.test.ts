import { describe, expect, it } from "@effect/vitest"
import { Console, Effect, Layer } from "effect"
import { execFile } from "node:child_process"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { authenticate, hashSecret } from "../../src/internal/gateway/keys.js"
import { main } from "../../src/internal/gateway/keysCli.js"
import { layerKeyFile } from "../../src/internal/gateway/keysMemory.js"
import * as Redis from "../../src/Redis.js"
import { describeRedis, redisUrl, testPrefix } from "../support/redis.js"

// The command line: most commands run through its entry in this process; a few through the real `bin.ts` in a process.

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")

interface Ran {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** `gateway keys …` in a process of its own: the real command line (`bin.ts`, its loader and its exit code). */
const keysProcess = (...args: ReadonlyArray<string>): Effect.Effect<Ran> =>
  Effect.async<Ran>((resume) => {
    const env = { ...process.env }
    delete env.REDIS_URL
    delete env.REDIS_PREFIX
    const child = execFile(
      process.execPath,
      ["--import", "tsx", "src/bin.ts", "gateway", "keys", ...args],
      { cwd: root, env, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1
        resume(Effect.succeed({ code, stdout, stderr }))
      }
    )
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

/**
 * `gateway keys …` in this process: the command's own entry (`main`, what `bin.ts` runs) with its console output and
 * exit code captured. A process costs about a second and a half of start-up; the few tests that need the real
 * command line use {@link keysProcess}.
 */
// The exit code is the process's: one command in this process at a time (the tests of this file run concurrently).
const oneAtATime = Effect.unsafeMakeSemaphore(1)

const keys = (...args: ReadonlyArray<string>): Effect.Effect<Ran> =>
  oneAtATime.withPermits(1)(Effect.consoleWith((base) =>
    Effect.suspend(() => {
      const out: Array<string> = []
      const err: Array<string> = []
      const text = (parts: ReadonlyArray<unknown>) => parts.map(String).join(" ")
      const captured: Console.Console = {
        ...base,
        log: (...parts) => Effect.sync(() => void out.push(text(parts))),
        error: (...parts) => Effect.sync(() => void err.push(text(parts)))
      }
      const before = process.exitCode
      process.exitCode = undefined
      return main(args).pipe(
        Console.withConsole(captured),
        Effect.map((): Ran => ({ code: Number(process.exitCode ?? 0), stdout: out.join("\n") + "\n", stderr: err.join("\n") + "\n" })),
        Effect.ensuring(Effect.sync(() => void (process.exitCode = before)))
      )
    })))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "gateway-keys-cli-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

const created = (ran: Ran) => {
  const secret = /sk-gw-[A-Za-z0-9_-]{43}/.exec(ran.stdout)?.[0]
  const id = /key_[A-Za-z0-9]{12}/.exec(ran.stdout)?.[0]
  expect(ran.code, ran.stderr).toBe(0)
  expect(secret).toBeDefined()
  expect(id).toBeDefined()
  expect(ran.stdout).toContain("cannot be shown again")
  return { secret: secret!, id: id! }
}

/** The row of `id` in a `list` table. */
const rowOf = (table: string, id: string) => table.split("\n").find((line) => line.startsWith(id)) ?? ""

/**
 * create → list shows it (no secret, no hash) → revoke → list shows it revoked, against one store's flags. In the
 * full run the first create and the first list are real processes.
 */
const lifecycle = (where: ReadonlyArray<string>, full: boolean) =>
  Effect.gen(function*() {
    const first = created(yield* (full ? keysProcess : keys)(
      "create", "--tenant", "acme", "--name", "ci runner", "--models", "gpt-4o,gpt-4o-mini",
      "--budget-tokens", "100000", "--period", "day", "--budget-usd", "5", "--rpm", "60", "--tpm", "20000",
      "--expires", "2099-01-01T00:00:00Z", ...where
    ))
    const second = created(yield* keys("create", "--tenant=beta", "--ttl", "30 days", ...where))
    const listed = yield* (full ? keysProcess : keys)("list", ...where)
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stdout.split("\n")[0]).toMatch(/^ID\s+TENANT\s+NAME\s+MODELS\s+LIMITS\s+CREATED\s+EXPIRES\s+STATUS$/)
    const row = rowOf(listed.stdout, first.id)
    for (const cell of ["acme", "ci runner", "gpt-4o,gpt-4o-mini", "100000 tokens/day", "$5/day", "60 rpm", "20000 tpm", "2099-01-01T00:00:00Z", "active"]) {
      expect(row).toContain(cell)
    }
    expect(rowOf(listed.stdout, second.id)).toMatch(/beta.*active$/)
    for (const { secret } of [first, second]) {
      expect(listed.stdout).not.toContain(secret)
      expect(listed.stdout).not.toContain(hashSecret(secret))
    }
    const revoked = yield* keys("revoke", first.id, ...where)
    expect(revoked.code, revoked.stderr).toBe(0)
    expect(revoked.stdout).toContain(`Revoked ${first.id}`)
    const after = yield* keys("list", ...where)
    expect(rowOf(after.stdout, first.id)).toMatch(/revoked \d{4}-\d{2}-\d{2}T\S+Z$/)
    expect(rowOf(after.stdout, second.id)).toMatch(/active$/)
    if (full) {
      const again = yield* keys("revoke", first.id, ...where)
      const unknown = yield* keys("revoke", "key_nosuchkey000", ...where)
      expect(again.code).toBe(0)
      expect(again.stdout).toContain("already revoked")
      expect(unknown.code).toBe(1)
      expect(unknown.stderr).toContain(`no key has the id "key_nosuchkey000"`)
    }
    return { first, second }
  })

describe.concurrent("gateway keys (the command line)", () => {
  it.live("against a key file: create → list → revoke → list; the gateway's store refuses the revoked key", () =>
    Effect.scoped(Effect.gen(function*() {
      const file = join(yield* tempDir, "keys.json")
      const { first, second } = yield* lifecycle(["--file", file], true)
      const text = yield* Effect.promise(() => readFile(file, "utf8"))
      expect(text).not.toContain(first.secret)
      expect(text).toContain(hashSecret(first.secret))
      const now = Date.now()
      const check = (secret: string) => Effect.flip(authenticate(`Bearer ${secret}`, now)).pipe(Effect.provide(layerKeyFile(file)))
      expect(yield* check(first.secret)).toMatchObject({ _tag: "KeyRefused", reason: "revoked", keyId: first.id })
      const ok = yield* authenticate(`Bearer ${second.secret}`, now).pipe(Effect.provide(layerKeyFile(file)))
      expect(ok).toMatchObject({ id: second.id, tenant: "beta" })
    })), 300_000)

  it.live("bad arguments: every problem listed, in the flags' own terms, and exit code 2", () =>
    Effect.scoped(Effect.gen(function*() {
      const file = join(yield* tempDir, "keys.json")
      const bad = yield* keysProcess("create", "--rpm", "0", "--models", "a,,b", "--period", "fortnightly", "--budget-tokens", "x", "--colour", "red", "--file", file)
      expect(bad.code).toBe(2)
      for (const problem of [
        `Unknown option "--colour"`,
        "--tenant T is required",
        `--period: "fortnightly" is not minute, hour, day, month`,
        `--budget-tokens: "x" is not a number`,
        "--rpm: Expected an integer ≥ 1, actual 0",
        "--models: Expected a non-empty text"
      ]) expect(bad.stderr).toContain(problem)
      expect(bad.stderr).toContain("Usage: effect-llm-resilience gateway keys")
      expect(bad.stdout).not.toMatch(/sk-gw-/)
      // (each other refusal is unit-tested: the parser's in keysCliParse.test.ts, generate's in keys.test.ts)
      const stray = yield* keys("list", "--tenant", "acme", "--redis", redisUrl, "--file", file)
      expect(stray.code).toBe(2)
      expect(stray.stderr).toContain("--tenant applies to create only")
      expect(stray.stderr).toContain("--redis and --file exclude each other")
      // nothing was written by a refused command
      expect(yield* Effect.promise(() => readFile(file, "utf8").then(() => "written", () => "absent"))).toBe("absent")
    })), 300_000)

  it.live("a Redis that cannot be reached: the reason, exit code 1", () =>
    Effect.gen(function*() {
      const down = yield* keys("list", "--redis", "redis://127.0.0.1:1")
      expect(down.code).toBe(1)
      expect(down.stderr).toContain("cannot reach Redis")
    }), 120_000)
})

describeRedis("gateway keys (the command line) against Redis", () => {
  it.live("create → list → revoke → list over --redis and --prefix; the gateway's Redis store sees each step", () =>
    Effect.gen(function*() {
      const prefix = testPrefix()
      const { first, second } = yield* lifecycle(["--redis", redisUrl, "--prefix", prefix], false)
      const store = Redis.layerGatewayKeyStore.pipe(Layer.provide(Redis.layer({ url: redisUrl, prefix })))
      const now = Date.now()
      const refused = yield* Effect.flip(authenticate(`Bearer ${first.secret}`, now)).pipe(Effect.provide(store))
      expect(refused).toMatchObject({ _tag: "KeyRefused", reason: "revoked", keyId: first.id })
      const ok = yield* authenticate(`Bearer ${second.secret}`, now).pipe(Effect.provide(store))
      expect(ok.tenant).toBe("beta")
    }), 300_000)
})
