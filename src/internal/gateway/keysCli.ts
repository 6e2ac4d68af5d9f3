/**
 * `effect-llm-resilience gateway keys create|list|revoke`: the gateway's virtual keys from the command line, in Redis
 * (`--redis URL`, or `REDIS_URL`) or in a key file (`--file keys.json`) when no Redis is given. `bin.ts` loads this
 * module only for `gateway keys`, and hands `main` the arguments after `keys`. Bad arguments print every problem
 * and exit with code 2; a store that cannot be reached exits with 1.
 */
import { Clock, Console, Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import type { InvalidOptions } from "../../InvalidOptions.js"
import { layer as gatewayKeysRedis } from "../redis/gatewayKeys.js"
import { layer as redisClient, type RedisError } from "../redis/client.js"
import { generate, type GenerateOptions, validate, type KeyBudget, type KeyRecord, KeyStore, type KeyStoreError } from "./keys.js"
import { makeFile } from "./keysMemory.js"

/** The usage text. */
export const usage = `Usage: effect-llm-resilience gateway keys <command> [options]

Commands
  create --tenant T [options]   creates a key and prints its secret once
  list                          every key: id, tenant, name, models, limits, created, expires, status
  revoke <id>                   revokes a key (every gateway replica refuses it within its key cache's ttl)

Options of create
  --tenant T                    the tenant (team) the key belongs to (required)
  --name N                      a label
  --models a,b                  the gateway models the key may call (default: every model)
  --budget-tokens N             a budget of N tokens per --period
  --budget-usd X                a budget of X USD per --period (with --budget-tokens: one budget of both)
  --period P                    minute, hour, day or month (UTC), or a rolling window such as "6 hours" (default day)
  --rpm N                       requests per minute of the key, across every replica
  --tpm N                       tokens per minute of the key, across every replica
  --expires 2027-01-01T00:00:00Z   the time the key stops working (ISO 8601)
  --ttl "30 days"               or: how long from now the key works

Where the keys are (every command)
  --redis URL                   Redis shared by the gateway's replicas (default: the REDIS_URL variable)
  --prefix P                    the key prefix of the gateway's Redis (default: REDIS_PREFIX, else "llm:")
  --file FILE                   a key file for a single gateway process, used when no Redis is given (default keys.json)
`

/** Where the keys are. */
export type Target =
  | { readonly _tag: "redis"; readonly url: Redacted.Redacted<string>; readonly prefix: string }
  | { readonly _tag: "file"; readonly path: string }

/** What the command line asks for. */
export type Command =
  | { readonly _tag: "help" }
  | { readonly _tag: "create"; readonly target: Target; readonly options: GenerateOptions }
  | { readonly _tag: "list"; readonly target: Target }
  | { readonly _tag: "revoke"; readonly target: Target; readonly id: string }

const valueFlags = [
  "--tenant", "--name", "--models", "--budget-tokens", "--budget-usd", "--period", "--rpm", "--tpm", "--expires", "--ttl",
  "--redis", "--prefix", "--file"
] as const
type Flag = (typeof valueFlags)[number]
const createOnly: ReadonlyArray<Flag> = valueFlags.filter((f) => f !== "--redis" && f !== "--prefix" && f !== "--file")

/** The flag a path of the key's options comes from, for messages in the command line's own terms. */
const flagOf = (path: string): string => {
  const [head, index, field] = path.split(".")
  if (head === "budgets") return field === "usd" ? "--budget-usd" : field === "period" ? "--period" : "--budget-tokens"
  if (head === "rateLimit") return index === "tpm" ? "--tpm" : "--rpm"
  if (head === "expiresAt") return "--expires"
  return `--${head}`
}

const numberOf = (flag: string, text: string, problems: Array<string>): number | undefined => {
  const n = Number(text)
  if (text.trim() === "" || !Number.isFinite(n)) {
    problems.push(`${flag}: "${text}" is not a number`)
    return undefined
  }
  return n
}

const periodOf = (text: string): KeyBudget["period"] =>
  text === "minute" || text === "hour" || text === "day" || text === "month" ? text : { rolling: text }

const createOptions = (flags: ReadonlyMap<Flag, string>, problems: Array<string>): GenerateOptions => {
  const num = (flag: Flag) => {
    const text = flags.get(flag)
    return text === undefined ? undefined : numberOf(flag, text, problems)
  }
  const tenant = flags.get("--tenant")
  if (tenant === undefined) problems.push("--tenant T is required")
  const tokens = num("--budget-tokens")
  const usd = num("--budget-usd")
  const period = flags.get("--period")
  const hasBudget = flags.has("--budget-tokens") || flags.has("--budget-usd")
  if (period !== undefined && !hasBudget) problems.push("--period applies to a budget: add --budget-tokens N or --budget-usd X")
  if (period !== undefined && typeof periodOf(period) !== "string" && Option.isNone(Duration.decodeUnknown(period))) {
    problems.push(`--period: "${period}" is not minute, hour, day, month or a rolling window such as "6 hours"`)
  }
  const rpm = num("--rpm")
  const tpm = num("--tpm")
  const expires = flags.get("--expires")
  if (expires !== undefined && flags.has("--ttl")) problems.push("--ttl and --expires exclude each other: give one")
  const expiresAt = expires === undefined ? undefined : Date.parse(expires)
  if (expires !== undefined && (expiresAt === undefined || Number.isNaN(expiresAt) || !/^\d{4}-\d{2}-\d{2}/.test(expires))) {
    problems.push(`--expires: "${expires}" is not an ISO 8601 time (e.g. 2027-01-01T00:00:00Z)`)
  }
  const models = flags.get("--models")?.split(",").map((m) => m.trim())
  return {
    tenant: tenant ?? "",
    name: flags.get("--name"),
    models,
    budgets: hasBudget ? [{ tokens, usd, period: periodOf(period ?? "day") }] : undefined,
    rateLimit: rpm === undefined && tpm === undefined ? undefined : { rpm, tpm },
    expiresAt: expiresAt !== undefined && !Number.isNaN(expiresAt) ? expiresAt : undefined,
    // checked by generate, every bad path listed
    ttl: flags.get("--ttl") as Duration.DurationInput | undefined
  }
}

const targetOf = (flags: ReadonlyMap<Flag, string>, env: NodeJS.ProcessEnv, problems: Array<string>): Target => {
  const redis = flags.get("--redis")
  const file = flags.get("--file")
  if (redis !== undefined && file !== undefined) problems.push("--redis and --file exclude each other: give one")
  const url = redis ?? (file === undefined ? env.REDIS_URL : undefined)
  if (url !== undefined && url.trim() !== "") {
    return { _tag: "redis", url: Redacted.make(url), prefix: flags.get("--prefix") ?? env.REDIS_PREFIX ?? "llm:" }
  }
  if (flags.has("--prefix")) problems.push("--prefix applies to Redis: add --redis URL")
  return { _tag: "file", path: file ?? "keys.json" }
}

/** What is wrong with a command line; for create, the options as far as they could be read. */
export interface Refusal {
  readonly problems: ReadonlyArray<string>
  readonly options?: GenerateOptions | undefined
}

/** `--flag=value` becomes `--flag value`. */
const splitEquals = (args: ReadonlyArray<string>): ReadonlyArray<string> =>
  args.flatMap((arg) => {
    const at = arg.indexOf("=")
    return arg.startsWith("--") && at > 0 ? [arg.slice(0, at), arg.slice(at + 1)] : [arg]
  })

/** The flags (each with its value) and the positional arguments; a problem for each unknown or valueless flag. */
const readArgs = (args: ReadonlyArray<string>, problems: Array<string>) => {
  const flags = new Map<Flag, string>()
  const positional: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    const flag = valueFlags.find((f) => f === arg)
    const value = args[i + 1]
    if (!arg.startsWith("--")) positional.push(arg)
    else if (flag === undefined) problems.push(`Unknown option "${arg}"`)
    else if (value === undefined || value.startsWith("--")) problems.push(`${flag} needs a value`)
    else {
      if (flags.has(flag)) problems.push(`${flag} is given twice`)
      flags.set(flag, value)
      i++
    }
  }
  return { flags, positional }
}

/**
 * Parses the arguments after `gateway keys`; every problem is listed (one a line), not only the first. `env` gives
 * `REDIS_URL` and `REDIS_PREFIX`. The values of create are checked by `generate` when it runs (`run` maps its paths
 * back to the flags).
 */
export const parse = (argv: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}): Either.Either<Command, Refusal> => {
  const [command, ...rest] = splitEquals(argv)
  if (command === undefined || command === "help" || command === "--help" || command === "-h" || rest.includes("--help")) {
    return Either.right({ _tag: "help" })
  }
  if (command !== "create" && command !== "list" && command !== "revoke") {
    return Either.left({ problems: [`Unknown command "${command}" (expected create, list or revoke)`] })
  }
  const problems: Array<string> = []
  const { flags, positional } = readArgs(rest, problems)
  if (command !== "create") {
    for (const flag of createOnly) if (flags.has(flag)) problems.push(`${flag} applies to create only`)
  }
  const target = targetOf(flags, env, problems)
  if (command === "revoke" && positional.length !== 1) {
    problems.push(positional.length === 0 ? "revoke needs the key's id: gateway keys revoke key_…" : `revoke takes one id, got ${positional.length}`)
  } else if (command !== "revoke" && positional.length > 0) {
    problems.push(`Unexpected argument(s): ${positional.map((p) => JSON.stringify(p)).join(", ")}`)
  }
  const options = command === "create" ? createOptions(flags, problems) : undefined
  if (problems.length > 0) return Either.left({ problems, options })
  if (command === "create") return Either.right({ _tag: "create", target, options: options! })
  if (command === "revoke") return Either.right({ _tag: "revoke", target, id: positional[0] })
  return Either.right({ _tag: "list", target })
}

// ---------------------------------------------------------------------------------------------------------------
// Running

/** Prints the problems and the usage; exit code 2. */
const refuse = (command: string, all: ReadonlyArray<string>) => {
  const problems = [...new Set(all)]
  return Effect.zipRight(
    Console.error(`gateway keys${command === "" ? "" : ` ${command}`}: ${problems.length === 1 ? "1 problem" : `${problems.length} problems`}:\n${
      problems.map((p) => `  ${p}`).join("\n")
    }\n\n${usage}`),
    Effect.sync(() => void (process.exitCode = 2))
  )
}

/** A failure that is not the arguments' fault (Redis down, an unreadable key file): the message; exit code 1. */
const failed = (message: string) =>
  Effect.zipRight(Console.error(`gateway keys: ${message}`), Effect.sync(() => void (process.exitCode = 1)))

const storeLayer = (target: Target): Layer.Layer<KeyStore, RedisError> =>
  target._tag === "file"
    ? Layer.effect(KeyStore, makeFile(target.path))
    : gatewayKeysRedis.pipe(
      Layer.provide(redisClient({
        url: target.url,
        prefix: target.prefix,
        // A command line gives up on a Redis that does not answer instead of reconnecting forever.
        retryStrategy: (times: number) => (times > 2 ? null : 100),
        connectTimeout: 2_000
      }))
    )

const describeTarget = (target: Target): string =>
  target._tag === "file" ? `the key file ${target.path}` : `Redis (prefix "${target.prefix}")`

const iso = (ms: number): string => `${new Date(ms).toISOString().slice(0, 19)}Z`

const limitsOf = (record: KeyRecord): string => {
  const period = (p: KeyBudget["period"]) => (typeof p === "string" ? p : `rolling ${p.rolling}`)
  const parts = [
    ...(record.budgets ?? []).flatMap((b) => [
      ...(b.tokens === undefined ? [] : [`${b.tokens} tokens/${period(b.period)}`]),
      ...(b.usd === undefined ? [] : [`$${b.usd}/${period(b.period)}`])
    ]),
    ...(record.rateLimit?.rpm === undefined ? [] : [`${record.rateLimit.rpm} rpm`]),
    ...(record.rateLimit?.tpm === undefined ? [] : [`${record.rateLimit.tpm} tpm`])
  ]
  return parts.length === 0 ? "-" : parts.join(", ")
}

/** The status of a key at `now`: active, expired or revoked. */
export const statusOf = (record: KeyRecord, now: number): string =>
  record.revokedAt !== undefined && record.revokedAt <= now
    ? `revoked ${iso(record.revokedAt)}`
    : record.expiresAt !== undefined && record.expiresAt <= now
    ? "expired"
    : "active"

/** The table `list` prints: never a hash or a secret. */
export const table = (records: ReadonlyArray<KeyRecord>, now: number): string => {
  const header = ["ID", "TENANT", "NAME", "MODELS", "LIMITS", "CREATED", "EXPIRES", "STATUS"]
  const rows = records.map((r) => [
    r.id,
    r.tenant,
    r.name ?? "-",
    r.models === undefined ? "*" : r.models.join(","),
    limitsOf(r),
    iso(r.createdAt),
    r.expiresAt === undefined ? "never" : iso(r.expiresAt),
    statusOf(r, now)
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)))
  return [header, ...rows].map((row) => row.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd()).join("\n")
}

const create = (options: GenerateOptions, target: Target) =>
  Effect.gen(function*() {
    const store = yield* KeyStore
    const now = yield* Clock.currentTimeMillis
    const { record, secret } = yield* generate(options, now)
    if (!(yield* store.put(record))) return yield* failed("a key with this id or secret already exists; run create again")
    yield* Console.log(
      `Created ${record.id} for tenant ${record.tenant} in ${describeTarget(target)}.\n\n` +
        `  ${Redacted.value(secret)}\n\n` +
        "This secret is shown once and cannot be shown again: only its SHA-256 is stored. Hand it to the client now\n" +
        "(Authorization: Bearer <secret>); if it is lost, revoke the key and create another."
    )
  })

const list = Effect.gen(function*() {
  const store = yield* KeyStore
  const records = yield* store.list
  const now = yield* Clock.currentTimeMillis
  yield* Console.log(records.length === 0 ? "No keys." : table(records, now))
})

const revoke = (id: string) =>
  Effect.gen(function*() {
    const store = yield* KeyStore
    const now = yield* Clock.currentTimeMillis
    const found = (yield* store.list).find((r) => r.id === id)
    if (found === undefined) return yield* failed(`no key has the id ${JSON.stringify(id)} (see gateway keys list)`)
    if (found.revokedAt !== undefined && found.revokedAt <= now) {
      return yield* Console.log(`${id} (tenant ${found.tenant}) was already revoked at ${iso(found.revokedAt)}.`)
    }
    if (!(yield* store.revoke(id, now))) return yield* failed(`no key has the id ${JSON.stringify(id)}`)
    yield* Console.log(
      `Revoked ${id} (tenant ${found.tenant}) at ${iso(now)}. Gateway replicas refuse it once their key cache entry ends ` +
        "(a few seconds)."
    )
  })

const inFlags = (issues: ReadonlyArray<InvalidOptions["issues"][number]>): ReadonlyArray<string> =>
  issues.map((i) => `${flagOf(i.path)}: ${i.message}`)

const onInvalid = (error: InvalidOptions) => refuse("create", inFlags(error.issues))

/** The problems of a refused command line, with those of create's values that the parser could read. */
const refusal = (command: string, refused: Refusal) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const named = (problem: string) => problem.split(/[\s:]/)[0]
    const flagged = new Set(refused.problems.map(named))
    const values = refused.options === undefined ? [] : inFlags(validate(refused.options, now)).filter((p) => !flagged.has(named(p)))
    return refuse(command, [...refused.problems, ...values])
  })

/** Runs one parsed command against its store. */
export const run = (command: Exclude<Command, { readonly _tag: "help" }>): Effect.Effect<void> => {
  const program: Effect.Effect<void, KeyStoreError | InvalidOptions, KeyStore> = command._tag === "create"
    ? create(command.options, command.target)
    : command._tag === "list"
    ? list
    : revoke(command.id)
  return program.pipe(
    Effect.provide(storeLayer(command.target)),
    Effect.catchAll((error) =>
      error._tag === "InvalidOptions"
        ? onInvalid(error)
        : failed(error._tag === "RedisError" ? `cannot reach Redis: ${error.message}` : error.message)
    )
  )
}

/** Runs `gateway keys …` (the arguments after `keys`), with `REDIS_URL` and `REDIS_PREFIX` from the environment. */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<void> =>
  Either.match(parse(argv, process.env), {
    onLeft: (refused) => refusal(argv[0] ?? "", refused),
    onRight: (command) => (command._tag === "help" ? Console.log(usage) : run(command))
  })
