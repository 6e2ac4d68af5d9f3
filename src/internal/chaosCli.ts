/**
 * The command line of `effect-llm-resilience chaos-server`: a small hand-written parser from argv to
 * ChaosServer options (validation of the values themselves is the ChaosServer's).
 */
import { Either } from "effect"

/** The usage text. */
export const usage = `Usage: effect-llm-resilience chaos-server [options]
       effect-llm-resilience gateway --config FILE     (an OpenAI-compatible gateway: gateway --help)
       effect-llm-resilience gateway keys create|list|revoke …   (its virtual keys: gateway keys --help)

Starts a fault-injecting OpenAI-compatible server on 127.0.0.1 (Ctrl-C stops it).

Server
  --port N                  port (default 0: a random free port)
  --seed N                  PRNG seed of faults and answers (default 0)
  --models a,b,c            models listed by GET /v1/models
  --words N                 words per generated answer (default 12)
  --config FILE             JSON file with { faults, perModel, quotas } (flags below override its "faults")

Quotas (x-ratelimit-* headers on every response of the model; 429 with Retry-After once spent)
  --quota MODEL:RPM[:TPM]   requests (and tokens) a window for MODEL (repeatable; RPM may be empty: MODEL::TPM)
  --quota-window MS         the window of every --quota (default 60000)

Faults (every rate is a probability from 0 to 1; all rates together at most 1)
  --error-rate R            rate of the error given by --status (default status 503)
  --status S                status of --error-rate
  --retry-after SECONDS     Retry-After (seconds) on --error-rate errors and the outage
  --retry-after-ms MS       retry-after-ms on --error-rate errors and the outage
  --code CODE               error code of --error-rate errors (e.g. insufficient_quota)
  --error S:R[:SECONDS]     another error status with its rate (repeatable)
  --latency MS              fixed delay before each answer
  --jitter MS               extra random delay in [0, MS)
  --first-token-delay MS    streams: delay before the first chunk
  --chunk-delay MS          streams: delay between chunks
  --hang-rate R             rate of requests never answered
  --cut-rate R              rate of responses cut before their end
  --malformed-rate R        rate of 200s with an invalid JSON body
  --content-filter-rate R   rate of 200s with finish_reason content_filter
  --outage [STATUS]         every request fails (default 503)

Endpoints: POST /v1/chat/completions, GET /v1/models, GET /_chaos/stats, POST /_chaos/config, POST /_chaos/reset
`

/** What the command line asks for. */
export type Command =
  | { readonly _tag: "help" }
  | {
    readonly _tag: "chaos-server"
    readonly server: Record<string, unknown>
    readonly faults: Record<string, unknown>
    readonly configFile: string | undefined
    /** Per-model quotas from `--quota`. */
    readonly quotas?: Readonly<Record<string, Record<string, unknown>>> | undefined
  }

const numberFlags: Record<string, readonly ["server" | "faults" | "error", string]> = {
  "--port": ["server", "port"],
  "--seed": ["server", "seed"],
  "--words": ["server", "words"],
  "--latency": ["faults", "latency"],
  "--jitter": ["faults", "jitter"],
  "--first-token-delay": ["faults", "firstTokenDelay"],
  "--chunk-delay": ["faults", "chunkDelay"],
  "--hang-rate": ["faults", "hangRate"],
  "--cut-rate": ["faults", "cutRate"],
  "--malformed-rate": ["faults", "malformedRate"],
  "--content-filter-rate": ["faults", "contentFilterRate"],
  "--error-rate": ["error", "rate"],
  "--status": ["error", "status"],
  "--retry-after": ["error", "seconds"],
  "--retry-after-ms": ["error", "ms"]
}

const toNumber = (flag: string, text: string | undefined): Either.Either<number, string> => {
  if (text === undefined || text.startsWith("--")) return Either.left(`${flag} needs a value`)
  const value = Number(text)
  return text.trim() !== "" && Number.isFinite(value) ? Either.right(value) : Either.left(`${flag}: "${text}" is not a number`)
}

const parseErrorSpec = (text: string | undefined): Either.Either<Record<string, unknown>, string> => {
  const parts = (text ?? "").split(":")
  const numbers = parts.map(Number)
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p.trim() === "") || numbers.some((n) => !Number.isFinite(n))) {
    return Either.left(`--error expects STATUS:RATE[:RETRY_AFTER_SECONDS], got "${text ?? ""}"`)
  }
  const [status, rate, seconds] = numbers
  return Either.right({ status, rate, ...(seconds === undefined ? {} : { retryAfter: { seconds } }) })
}

interface Draft {
  server: Record<string, unknown>
  faults: Record<string, unknown>
  error: Record<string, number>
  code: string | undefined
  errors: Array<Record<string, unknown>>
  outage: number | true | undefined
  configFile: string | undefined
  quotas: Record<string, Record<string, unknown>>
  quotaWindow: number | undefined
}

const parseQuota = (text: string | undefined): Either.Either<readonly [string, Record<string, unknown>], string> => {
  const bad = Either.left(`--quota expects MODEL:RPM[:TPM] (RPM may be empty), got "${text ?? ""}"`)
  const parts = (text ?? "").split(":")
  if (parts.length < 2 || parts.length > 3 || parts[0].trim() === "") return bad
  const [model, rpm, tpm] = parts
  const numbers = [rpm, tpm ?? ""].map((p) => (p.trim() === "" ? undefined : Number(p)))
  if (numbers.some((n) => n !== undefined && !Number.isFinite(n)) || numbers.every((n) => n === undefined)) return bad
  const [r, t] = numbers
  return Either.right([model.trim(), { ...(r === undefined ? {} : { rpm: r }), ...(t === undefined ? {} : { tpm: t }) }] as const)
}

const retryAfterOf = (error: Record<string, number>) =>
  error.ms !== undefined ? { ms: error.ms } : error.seconds !== undefined ? { seconds: error.seconds } : undefined

// Flags that only shape another flag's error must not be dropped silently when that flag is missing.
const unusedFlag = (draft: Draft): string | undefined => {
  const hasRate = draft.error.rate !== undefined
  if (!hasRate && draft.error.status !== undefined) return "--status applies to --error-rate: add --error-rate R"
  if (!hasRate && draft.code !== undefined) return "--code applies to --error-rate: add --error-rate R"
  const hasRetryAfter = draft.error.seconds !== undefined || draft.error.ms !== undefined
  if (draft.error.seconds !== undefined && draft.error.ms !== undefined) {
    return "--retry-after and --retry-after-ms exclude each other: give one"
  }
  if (hasRetryAfter && !hasRate && draft.outage === undefined) {
    return "--retry-after / --retry-after-ms apply to --error-rate and --outage: add one of them (or use --error S:R:SECONDS)"
  }
  return undefined
}

const finish = (draft: Draft): Either.Either<Command, string> => {
  const unused = unusedFlag(draft)
  if (unused !== undefined) return Either.left(unused)
  const retryAfter = retryAfterOf(draft.error)
  const errors = [...draft.errors]
  if (draft.error.rate !== undefined) {
    errors.unshift({
      status: draft.error.status ?? 503,
      rate: draft.error.rate,
      ...(retryAfter === undefined ? {} : { retryAfter }),
      ...(draft.code === undefined ? {} : { code: draft.code })
    })
  }
  if (draft.quotaWindow !== undefined && Object.keys(draft.quotas).length === 0) {
    return Either.left("--quota-window applies to --quota: add --quota MODEL:RPM[:TPM]")
  }
  const quotas = Object.fromEntries(Object.entries(draft.quotas).map(([model, quota]) =>
    [model, draft.quotaWindow === undefined ? quota : { ...quota, window: draft.quotaWindow }]))
  const faults = { ...draft.faults }
  if (errors.length > 0) faults.errors = errors
  if (draft.outage !== undefined) {
    faults.outage = {
      ...(draft.outage === true ? {} : { status: draft.outage }),
      ...(retryAfter === undefined ? {} : { retryAfter })
    }
  }
  return Either.right({
    _tag: "chaos-server",
    server: draft.server,
    faults,
    configFile: draft.configFile,
    ...(Object.keys(quotas).length === 0 ? {} : { quotas })
  })
}

// One flag at `i`; returns how many arguments it consumed.
const step = (draft: Draft, args: ReadonlyArray<string>, i: number): Either.Either<number, string> => {
  const flag = args[i]
  const value = args[i + 1]
  const numeric = numberFlags[flag]
  if (numeric !== undefined) {
    return Either.map(toNumber(flag, value), (n) => {
      const [target, key] = numeric
      if (target === "error") draft.error[key] = n
      else draft[target][key] = n
      return 2
    })
  }
  switch (flag) {
    case "--models":
      if (value === undefined) return Either.left("--models needs a value")
      draft.server.models = value.split(",").map((m) => m.trim()).filter((m) => m.length > 0)
      return Either.right(2)
    case "--code":
      if (value === undefined) return Either.left("--code needs a value")
      draft.code = value
      return Either.right(2)
    case "--config":
      if (value === undefined) return Either.left("--config needs a file")
      draft.configFile = value
      return Either.right(2)
    case "--error":
      return Either.map(parseErrorSpec(value), (spec) => (draft.errors.push(spec), 2))
    case "--quota":
      return Either.map(parseQuota(value), ([model, quota]) => (draft.quotas[model] = quota, 2))
    case "--quota-window":
      return Either.map(toNumber(flag, value), (ms) => (draft.quotaWindow = ms, 2))
    case "--outage": {
      if (value === undefined || value.startsWith("--")) return Either.right((draft.outage = true, 1))
      return Either.map(toNumber(flag, value), (status) => (draft.outage = status, 2))
    }
    default:
      return Either.left(`Unknown option "${flag}"`)
  }
}

/** `--flag=value` becomes `--flag value`. */
const splitEquals = (args: ReadonlyArray<string>): ReadonlyArray<string> =>
  args.flatMap((arg) => {
    const at = arg.indexOf("=")
    return arg.startsWith("--") && at > 0 ? [arg.slice(0, at), arg.slice(at + 1)] : [arg]
  })

/** Parses the arguments after the program name (`chaos-server --port 8787 …`). */
export const parse = (argv: ReadonlyArray<string>): Either.Either<Command, string> => {
  const [command, ...rest] = argv
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    return Either.right({ _tag: "help" })
  }
  if (command !== "chaos-server") return Either.left(`Unknown command "${command}"`)
  const args = splitEquals(rest)
  if (args.includes("--help") || args.includes("-h")) return Either.right({ _tag: "help" })
  const draft: Draft = {
    server: {},
    faults: {},
    error: {},
    code: undefined,
    errors: [],
    outage: undefined,
    configFile: undefined,
    quotas: Object.create(null),
    quotaWindow: undefined
  }
  let i = 0
  while (i < args.length) {
    const consumed = step(draft, args, i)
    if (Either.isLeft(consumed)) return Either.left(consumed.left)
    i += consumed.right
  }
  return finish(draft)
}

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * The ChaosServer options of a command: the server flags, the `--config` file's `perModel`, and its `faults` with
 * the fault flags on top. The file must be a JSON object with only `faults` and `perModel` (a misspelt key is an
 * error, not an ignored setting); the values themselves are validated by the ChaosServer.
 */
export const toOptions = (
  command: Extract<Command, { readonly _tag: "chaos-server" }>,
  file: unknown
): Either.Either<Record<string, unknown>, string> => {
  const quotas = command.quotas === undefined ? {} : { quotas: command.quotas }
  if (file === undefined) return Either.right({ ...command.server, faults: command.faults, ...quotas })
  const where = `--config ${command.configFile ?? ""}`.trim()
  if (!isPlainObject(file)) return Either.left(`${where}: expected a JSON object { "faults": …, "perModel": …, "quotas": … }`)
  const unknown = Object.keys(file).filter((key) => key !== "faults" && key !== "perModel" && key !== "quotas")
  if (unknown.length > 0) {
    return Either.left(
      `${where}: unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(", ")} (expected "faults", "perModel", "quotas")`
    )
  }
  if (file.faults !== undefined && !isPlainObject(file.faults)) return Either.left(`${where}: "faults" must be an object`)
  if (file.quotas !== undefined && !isPlainObject(file.quotas)) return Either.left(`${where}: "quotas" must be an object`)
  // --quota flags replace the file's quota of the same model.
  const merged = file.quotas === undefined && command.quotas === undefined ? {} : { quotas: { ...file.quotas, ...command.quotas } }
  return Either.right({
    ...command.server,
    ...(file.perModel === undefined ? {} : { perModel: file.perModel }),
    faults: { ...file.faults, ...command.faults },
    ...merged
  })
}
