/**
 * The command line: `effect-llm-resilience chaos-server --port 8787 --seed 42 --error-rate 0.2 --status 503`.
 * Run `effect-llm-resilience --help` for every option.
 *
 * @since 0.1.0
 */
import { Console, Effect, Either } from "effect"
import { readFileSync } from "node:fs"
import * as ChaosServer from "./ChaosServer.js"
import * as Cli from "./internal/chaosCli.js"
import { runMain } from "./internal/cliRuntime.js"
import { load, optionalPeers } from "./internal/peers.js"

const fail = (message: string) =>
  Effect.zipRight(Console.error(`${message}\n\n${Cli.usage}`), Effect.sync(() => void (process.exitCode = 2)))

const readConfig = (file: string): Either.Either<unknown, string> =>
  Either.try({
    try: () => JSON.parse(readFileSync(file, "utf8")) as unknown,
    catch: (error) => `Cannot read --config ${file}: ${error instanceof Error ? error.message : String(error)}`
  })

const describe = (options: ChaosServer.Options): string => {
  const faults = options.faults ?? {}
  const parts = Object.entries(faults).map(([key, value]) => `${key}=${JSON.stringify(value)}`)
  return parts.length === 0 ? "no faults" : parts.join(" ")
}

const serve = (options: ChaosServer.Options) =>
  Effect.scoped(Effect.gen(function* () {
    const server = yield* ChaosServer.make(options)
    yield* Console.log(`ChaosServer listening on ${server.baseURL} (seed ${options.seed ?? 0}; ${describe(options)})`)
    yield* Console.log(`stats: ${server.url}/_chaos/stats   config: POST ${server.url}/_chaos/config`)
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(server.stats, (stats) => Console.log(`\nstopped; stats: ${JSON.stringify(stats)}`))
    )
    return yield* Effect.never
  })).pipe(
    Effect.catchTag("InvalidOptions", (error) => fail(error.message)),
    Effect.catchTag("ServeError", (error) => fail(`Cannot listen: ${String(error.cause)}`))
  )

interface Command {
  readonly main: (argv: ReadonlyArray<string>) => Effect.Effect<void>
}

// The gateway's commands load only when asked for (by a specifier the import graph does not follow): they need the
// optional peers (openai, ioredis, OpenTelemetry) that chaos-server does not.
const gatewayCommands = { serve: "./internal/gateway/cli.js", keys: "./internal/gateway/keysCli.js" } as const

const gateway = (argv: ReadonlyArray<string>) => {
  const [which, args] = argv[0] === "keys" ? ["keys", argv.slice(1)] as const : ["serve", argv] as const
  const peers = Object.fromEntries((optionalPeers.Gateway ?? []).map((name) => [name, "*"]))
  const specifier: string = gatewayCommands[which]
  return Effect.tryPromise(() => load("effect-llm-resilience gateway", peers, () => import(specifier) as Promise<Command>)).pipe(
    Effect.matchEffect({
      onFailure: (error) => fail(error.cause instanceof Error ? error.cause.message : String(error.cause)),
      onSuccess: (command) => command.main(args)
    })
  )
}

const main = (argv: ReadonlyArray<string>) =>
  argv[0] === "gateway" ? gateway(argv.slice(1)) : Either.match(Cli.parse(argv), {
    onLeft: fail,
    onRight: (command) => {
      if (command._tag === "help") return Console.log(Cli.usage)
      const file = command.configFile === undefined ? Either.right(undefined) : readConfig(command.configFile)
      const options = Either.flatMap(file, (json) => Cli.toOptions(command, json))
      // The values are validated (every failing path listed) by ChaosServer.make.
      return Either.isLeft(options) ? fail(options.left) : serve(options.right as ChaosServer.Options)
    }
  })

runMain(main(process.argv.slice(2)))
