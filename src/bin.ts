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

const main = (argv: ReadonlyArray<string>) =>
  Either.match(Cli.parse(argv), {
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
