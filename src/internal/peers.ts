/**
 * The optional peer dependencies behind each subpath, and the guard that names them when one is missing.
 *
 * The published entry of a subpath with optional peers (`dist/entry/<Module>.js`, written by `scripts/build.ts`)
 * loads its module through {@link load}: when the import fails because a peer is not installed, the error says
 * which subpath needs which packages and the `npm i` command that adds them, instead of Node's bare
 * `ERR_MODULE_NOT_FOUND` for whichever file happened to be resolved first.
 */
import { createRequire } from "node:module"

/** The packages each subpath's code imports (beyond `effect` and `@effect/platform`), by module name. */
export const optionalPeers: Readonly<Record<string, ReadonlyArray<string>>> = {
  OpenAi: ["openai"],
  BatchJob: ["openai"],
  Redis: ["ioredis"],
  Prometheus: ["@effect/opentelemetry", "@opentelemetry/exporter-prometheus", "@opentelemetry/sdk-metrics"],
  Otlp: ["@effect/opentelemetry"],
  EffectAi: ["@effect/ai"],
  Gateway: ["openai", "ioredis", "@effect/opentelemetry", "@opentelemetry/exporter-prometheus", "@opentelemetry/sdk-metrics"]
}

const require = createRequire(import.meta.url)

const codeOf = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "code" in error ? error.code : undefined

/** Whether `name` resolves from this package (a package that hides its package.json is still installed). */
export const isInstalled = (name: string, resolve: (specifier: string) => string = require.resolve): boolean => {
  try {
    resolve(`${name}/package.json`)
    return true
  } catch (error) {
    return codeOf(error) === "ERR_PACKAGE_PATH_NOT_EXPORTED"
  }
}

/** The message of a subpath whose `missing` peers (of all its `peers`, name → version range) are not installed. */
export const missingMessage = (
  subpath: string,
  peers: Readonly<Record<string, string>>,
  missing: ReadonlyArray<string>
): string => {
  const names = Object.keys(peers)
  const install = missing.map((name) => JSON.stringify(`${name}@${peers[name] ?? "*"}`)).join(" ")
  const some = missing.length < names.length ? ` (not installed: ${missing.join(", ")})` : ""
  return `${subpath} needs the optional peer ${names.length === 1 ? "dependency" : "dependencies"} ` +
    `${names.join(", ")}${some}: npm i ${install}`
}

/**
 * Imports a subpath's module; if that fails because some of its peers are not installed, fails with an Error naming
 * them (the original error as its `cause`). Any other failure is rethrown as it is.
 */
export const load = async <A>(
  subpath: string,
  peers: Readonly<Record<string, string>>,
  module: () => Promise<A>,
  installed: (name: string) => boolean = isInstalled
): Promise<A> => {
  try {
    return await module()
  } catch (error) {
    const missing = Object.keys(peers).filter((name) => !installed(name))
    if (missing.length === 0 || codeOf(error) !== "ERR_MODULE_NOT_FOUND") throw error
    throw new Error(missingMessage(subpath, peers, missing), { cause: error })
  }
}
