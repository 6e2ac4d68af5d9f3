/**
 * The gateway's configuration: its Schema, the checks one Schema cannot make (a deployment's upstream exists, ids are
 * unique, every route's pipeline builds), and the JSON file form (`apiKeyEnv` read from the environment, pipelines
 * read through `Pipeline.fromConfig`). Every bad path is listed in one `InvalidOptions` (target "Gateway").
 */
import { ConfigProvider, Duration, Effect, Either, Redacted, Schema } from "effect"
import { DurationInput } from "../durationInput.js"
import { InvalidOptions, type Issue } from "../../InvalidOptions.js"
import * as Pipeline from "../../Pipeline.js"
import type * as Router from "../../Router.js"
import { type KeyRecord, KeyRecordSchema } from "./keys.js"

/** One OpenAI-compatible upstream. */
export interface Upstream {
  readonly baseURL: string
  /** The upstream's API key (in code). */
  readonly apiKey?: Redacted.Redacted<string> | undefined
  /** The environment variable holding it (in a JSON file). */
  readonly apiKeyEnv?: string | undefined
}

/** One deployment of a gateway model: the upstream and the model name it is called with there. */
export interface Deployment {
  readonly id: string
  readonly upstream: string
  readonly model: string
}

/** One gateway model. */
export interface Route {
  readonly deployments: ReadonlyArray<Deployment>
  readonly strategy?: Router.Strategy | undefined
  /** The route's pipeline; replaces the default `pipeline` for this model. */
  readonly pipeline?: Pipeline.Options | undefined
}

/** One embedding model: its deployments, tried in order. */
export interface EmbeddingRoute {
  readonly deployments: ReadonlyArray<Deployment>
}

/** The gateway's configuration (see `Gateway.Config`). */
export interface Config {
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly upstreams: Readonly<Record<string, Upstream>>
  readonly models: Readonly<Record<string, Route>>
  readonly embeddings?: Readonly<Record<string, EmbeddingRoute>> | undefined
  readonly pipeline?: Pipeline.Options | undefined
  readonly redis?: { readonly url: string; readonly prefix?: string | undefined } | undefined
  readonly keys?: ReadonlyArray<KeyRecord> | undefined
  readonly keysFile?: string | undefined
  readonly shutdown?: { readonly grace?: Duration.DurationInput | undefined } | undefined
  readonly maxClients?: number | undefined
}

/** A validated configuration, every default applied and every upstream key at hand. */
export interface Resolved {
  readonly host: string
  readonly port: number
  readonly upstreams: ReadonlyMap<string, { readonly baseURL: string; readonly apiKey: Redacted.Redacted<string> }>
  readonly models: ReadonlyMap<string, Route & { readonly pipeline: Pipeline.Options }>
  readonly embeddings: ReadonlyMap<string, EmbeddingRoute>
  readonly redis: { readonly url: string; readonly prefix: string } | undefined
  readonly keys: ReadonlyArray<KeyRecord> | undefined
  readonly keysFile: string | undefined
  readonly grace: Duration.Duration
  readonly maxClients: number
}

const optional = <S extends Schema.Schema.All>(schema: S) => Schema.optionalWith(schema, { exact: true })
const strict = { parseOptions: { onExcessProperty: "error" } } as const

const Name = Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9._-]+$/, {
  message: () => "Expected a name of letters, digits, '.', '_' or '-'"
}))
const AbsoluteUrl = Schema.String.pipe(Schema.filter((s) => URL.canParse(s), { message: () => "Expected an absolute URL" }))
const Options = Schema.Record({ key: Schema.String, value: Schema.Unknown })

const UpstreamSchema = Schema.Struct({
  baseURL: AbsoluteUrl,
  apiKey: optional(Schema.RedactedFromSelf(Schema.String)),
  apiKeyEnv: optional(Schema.NonEmptyString)
}).annotations(strict)

const DeploymentSchema = Schema.Struct({ id: Name, upstream: Schema.String, model: Schema.NonEmptyString }).annotations(strict)

const RouteSchema = Schema.Struct({
  deployments: Schema.NonEmptyArray(DeploymentSchema),
  strategy: optional(Schema.Literal("weighted", "least-busy", "latency", "usage", "cost")),
  pipeline: optional(Options)
}).annotations(strict)

const ConfigSchema = Schema.Struct({
  host: optional(Schema.NonEmptyString),
  port: optional(Schema.Int.pipe(Schema.between(0, 65_535))),
  upstreams: Schema.Record({ key: Name, value: UpstreamSchema }),
  models: Schema.Record({ key: Schema.NonEmptyString, value: RouteSchema }),
  embeddings: optional(Schema.Record({
    key: Schema.NonEmptyString,
    value: Schema.Struct({ deployments: Schema.NonEmptyArray(DeploymentSchema) }).annotations(strict)
  })),
  pipeline: optional(Options),
  redis: optional(Schema.Struct({ url: AbsoluteUrl, prefix: optional(Schema.String) }).annotations(strict)),
  keys: optional(Schema.Array(KeyRecordSchema)),
  keysFile: optional(Schema.NonEmptyString),
  shutdown: optional(Schema.Struct({ grace: optional(DurationInput) }).annotations(strict)),
  maxClients: optional(Schema.Int.pipe(Schema.positive()))
}).annotations(strict)

type Decoded = typeof ConfigSchema.Type

const upstreamIssues = (config: Decoded, env: NodeJS.ProcessEnv): ReadonlyArray<Issue> =>
  Object.entries(config.upstreams).flatMap(([name, u]): ReadonlyArray<Issue> => {
    const path = `upstreams.${name}`
    if (u.apiKey !== undefined && u.apiKeyEnv !== undefined) return [{ path, message: "Give apiKey or apiKeyEnv, not both" }]
    if (u.apiKey === undefined && u.apiKeyEnv === undefined) return [{ path: `${path}.apiKeyEnv`, message: "Required (or apiKey in code)" }]
    if (u.apiKeyEnv !== undefined && (env[u.apiKeyEnv] ?? "") === "") {
      return [{ path: `${path}.apiKeyEnv`, message: `The environment variable ${u.apiKeyEnv} is not set` }]
    }
    return []
  })

const routeIssues = (config: Decoded): ReadonlyArray<Issue> => {
  const seen = new Set<string>()
  const issues: Array<Issue> = []
  if (Object.keys(config.models).length === 0) issues.push({ path: "models", message: "Expected at least one model" })
  const routes = [
    ...Object.entries(config.models).map(([model, route]) => [`models.${model}`, route] as const),
    ...Object.entries(config.embeddings ?? {}).map(([model, route]) => [`embeddings.${model}`, route] as const)
  ]
  for (const [at, route] of routes) {
    route.deployments.forEach((d, i) => {
      const path = `${at}.deployments.${i}`
      if (!Object.hasOwn(config.upstreams, d.upstream)) {
        issues.push({ path: `${path}.upstream`, message: `No upstream named "${d.upstream}"` })
      }
      if (seen.has(d.id)) issues.push({ path: `${path}.id`, message: `The deployment id "${d.id}" is used twice` })
      seen.add(d.id)
    })
  }
  return issues
}

const under = (path: string, issues: ReadonlyArray<Issue>): ReadonlyArray<Issue> =>
  issues.map((issue) => ({ path: issue.path === "" ? path : `${path}.${issue.path}`, message: issue.message }))

/** A pipeline's issues: the gateway builds the router itself, and every pattern's options must build. */
const pipelineIssues = (path: string, options: Pipeline.Options) =>
  Effect.gen(function* () {
    const own: ReadonlyArray<Issue> = options.router === undefined ? [] : [{
      path: `${path}.router`,
      message: "The gateway routes each model over its deployments itself: remove router"
    }]
    const built = yield* Effect.either(Effect.provide(Pipeline.policies(options), Pipeline.layerStoresMemory))
    return [...own, ...(Either.isLeft(built) ? under(path, built.left.issues) : [])]
  })

/** Validates a configuration given in code (every bad path listed) and applies the defaults. */
export const resolve = (input: Config, env: NodeJS.ProcessEnv = process.env): Effect.Effect<Resolved, InvalidOptions> =>
  Effect.gen(function* () {
    const decoded = Schema.decodeUnknownEither(ConfigSchema, { errors: "all" })(input)
    if (Either.isLeft(decoded)) return yield* Effect.fail(InvalidOptions.fromParseError("Gateway", decoded.left))
    const config = decoded.right
    const defaultPipeline = (input.pipeline ?? {}) as Pipeline.Options
    const pipelines = Object.entries(input.models).map(([model, route]) =>
      route.pipeline === undefined
        ? { path: "pipeline", options: defaultPipeline }
        : { path: `models.${model}.pipeline`, options: route.pipeline })
    // The default pipeline is checked once, the routes' own each.
    const distinct = [...new Map(pipelines.map((p) => [p.path, p])).values()]
    if (input.pipeline !== undefined && !distinct.some((p) => p.path === "pipeline")) {
      distinct.unshift({ path: "pipeline", options: defaultPipeline })
    }
    const fromPipelines = yield* Effect.forEach(distinct, (p) => pipelineIssues(p.path, p.options))
    const keyIssues: ReadonlyArray<Issue> = config.keys !== undefined && config.keysFile !== undefined
      ? [{ path: "keysFile", message: "Give keys or keysFile, not both" }]
      : []
    const issues = [...upstreamIssues(config, env), ...routeIssues(config), ...keyIssues, ...fromPipelines.flat()]
    if (issues.length > 0) return yield* Effect.fail(new InvalidOptions({ target: "Gateway", issues }))
    return {
      host: config.host ?? "127.0.0.1",
      port: config.port ?? 0,
      upstreams: new Map(Object.entries(input.upstreams).map(([name, u]) => [name, {
        baseURL: u.baseURL,
        apiKey: u.apiKey ?? Redacted.make(env[u.apiKeyEnv ?? ""] ?? "")
      }])),
      models: new Map(Object.entries(input.models).map(([model, route]) => [model, {
        ...route,
        pipeline: route.pipeline ?? defaultPipeline
      }])),
      embeddings: new Map(Object.entries(config.embeddings ?? {})),
      redis: config.redis === undefined ? undefined : { url: config.redis.url, prefix: config.redis.prefix ?? "llm:" },
      keys: config.keys,
      keysFile: config.keysFile,
      grace: config.shutdown?.grace ?? Duration.seconds(10),
      maxClients: config.maxClients ?? 1000
    }
  })

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** One pipeline of a JSON file, read as `Pipeline.fromConfig` reads options (a `retry.budget` made a budget). */
const readPipeline = (path: string, json: unknown) =>
  Pipeline.fromConfig("").pipe(
    Effect.withConfigProvider(ConfigProvider.fromJson(json)),
    Effect.mapError((error): ReadonlyArray<Issue> =>
      error._tag === "InvalidOptions" ? under(path, error.issues) : [{ path, message: String(error) }]),
    Effect.either
  )

/**
 * The configuration of a JSON file (`gateway --config gateway.json`): the same shape, with each upstream's key named
 * by `apiKeyEnv` and each pipeline read through `Pipeline.fromConfig`, then checked as {@link resolve} checks it.
 */
export const fromJson = (json: unknown, env: NodeJS.ProcessEnv = process.env): Effect.Effect<Config, InvalidOptions> =>
  Effect.gen(function* () {
    if (!isObject(json)) {
      return yield* Effect.fail(new InvalidOptions({ target: "Gateway", issues: [{ path: "", message: "Expected a JSON object" }] }))
    }
    const issues: Array<Issue> = []
    const pipeline = (path: string, value: unknown) =>
      Effect.map(readPipeline(path, value), (read) => {
        if (Either.isRight(read)) return read.right
        issues.push(...read.left)
        return undefined
      })
    const models = isObject(json.models) ? json.models : undefined
    const readModels = models === undefined ? json.models : Object.fromEntries(
      yield* Effect.forEach(Object.entries(models), ([name, route]) =>
        isObject(route) && isObject(route.pipeline)
          ? Effect.map(pipeline(`models.${name}.pipeline`, route.pipeline), (p) => [name, { ...route, pipeline: p ?? {} }] as const)
          : Effect.succeed([name, route] as const))
    )
    const defaultPipeline = isObject(json.pipeline) ? yield* pipeline("pipeline", json.pipeline) : json.pipeline
    // An absent pipeline stays absent (an exact optional field refuses an explicit undefined).
    const config = { ...json, models: readModels, ...(json.pipeline === undefined ? {} : { pipeline: defaultPipeline }) } as unknown as Config
    const resolved = yield* Effect.either(resolve(config, env))
    // A pipeline that could not be read is checked as empty: the other paths are still listed.
    if (Either.isLeft(resolved)) issues.push(...resolved.left.issues)
    if (issues.length > 0 || Either.isLeft(resolved)) {
      return yield* Effect.fail(new InvalidOptions({ target: "Gateway", issues }))
    }
    return config
  })
