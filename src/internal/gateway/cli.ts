/**
 * `effect-llm-resilience gateway --config gateway.json [--host H] [--port N]`: serves the gateway of a JSON
 * configuration (see `Gateway.fromJson`) until SIGINT or SIGTERM, then drains it (new requests get 503, those in
 * flight get `shutdown.grace`). `bin.ts` loads this module only for the `gateway` command, so the rest of the command
 * line needs none of the gateway's optional peers.
 */
import { Console, Effect, Either } from "effect"
import { readFileSync } from "node:fs"
import * as Gateway from "../../Gateway.js"

/** The usage text of the serve command. */
export const usage = `Usage: effect-llm-resilience gateway --config FILE [--host HOST] [--port N]

Serves an OpenAI-compatible gateway (POST /v1/chat/completions, GET /v1/models, /healthz, /metrics) with the
library's policies, configured by a JSON file; SIGINT or SIGTERM drains it (new requests get 503, requests in
flight get shutdown.grace to finish).

  --config FILE   the JSON configuration (upstreams, models, pipeline, redis, keys or keysFile, shutdown)
  --host HOST     overrides the file's host (default 127.0.0.1)
  --port N        overrides the file's port (0: any free port)

Keys: effect-llm-resilience gateway keys create|list|revoke …
`

/** What the command line asks for. */
export type Command =
  | { readonly _tag: "help" }
  | { readonly _tag: "serve"; readonly configFile: string; readonly host?: string | undefined; readonly port?: number | undefined }

/** Parses the arguments after `gateway`. */
export const parse = (argv: ReadonlyArray<string>): Either.Either<Command, string> => {
  const args = argv.flatMap((a) => (a.startsWith("--") && a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a]))
  if (args.length === 0 || args.includes("--help") || args.includes("-h") || args[0] === "help") return Either.right({ _tag: "help" })
  let configFile: string | undefined
  let host: string | undefined
  let port: number | undefined
  for (let i = 0; i < args.length; i += 2) {
    const flag = args[i]
    const value = args[i + 1]
    if (value === undefined || value.startsWith("--")) return Either.left(`${flag} needs a value`)
    if (flag === "--config") configFile = value
    else if (flag === "--host") host = value
    else if (flag === "--port") {
      port = Number(value)
      if (value.trim() === "" || !Number.isInteger(port)) return Either.left(`--port: "${value}" is not an integer`)
    } else return Either.left(`Unknown option ${flag}`)
  }
  if (configFile === undefined) return Either.left("--config FILE is required")
  return Either.right({ _tag: "serve", configFile, host, port })
}

const readJson = (file: string): Either.Either<unknown, string> =>
  Either.try({
    try: () => JSON.parse(readFileSync(file, "utf8")) as unknown,
    catch: (error) => `Cannot read --config ${file}: ${error instanceof Error ? error.message : String(error)}`
  })

const fail = (message: string) =>
  Effect.zipRight(Console.error(`${message}\n\n${usage}`), Effect.sync(() => void (process.exitCode = 2)))

const withOverrides = (json: unknown, command: Extract<Command, { _tag: "serve" }>): unknown =>
  typeof json === "object" && json !== null && !Array.isArray(json)
    ? { ...json, ...(command.host === undefined ? {} : { host: command.host }), ...(command.port === undefined ? {} : { port: command.port }) }
    : json

const serve = (command: Extract<Command, { _tag: "serve" }>) =>
  Either.match(readJson(command.configFile), {
    onLeft: fail,
    onRight: (json) =>
      Effect.scoped(Effect.gen(function* () {
        const config = yield* Gateway.fromJson(withOverrides(json, command))
        const gateway = yield* Gateway.make(config)
        yield* Console.log(`Gateway listening on ${gateway.baseURL} (models: ${Object.keys(config.models).join(", ")})`)
        yield* Effect.addFinalizer(() => Console.log("Gateway stopped"))
        return yield* Effect.never
      })).pipe(
        Effect.catchTag("InvalidOptions", (error) =>
          fail(`The configuration is invalid:\n${error.issues.map((i) => `  ${i.path || "(root)"}: ${i.message}`).join("\n")}`)),
        Effect.catchTag("ServeError", (error) => fail(`Cannot listen: ${String(error.cause)}`)),
        Effect.catchTag("RedisError", (error) => fail(`Cannot reach Redis: ${error.message}`))
      )
  })

/** Runs `gateway …` (the arguments after `gateway`), `keys` aside: bin.ts sends those to the keys command. */
export const main = (argv: ReadonlyArray<string>): Effect.Effect<void> =>
  Either.match(parse(argv), {
    onLeft: fail,
    onRight: (command) => (command._tag === "help" ? Console.log(usage) : serve(command))
  })
