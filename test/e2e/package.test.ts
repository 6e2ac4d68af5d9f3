import { execFile, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { connect } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

// The package as a user gets it: `npm pack`, then a new project installs the tarball beside an `effect` patch other
// than the dev pin (one copy of Effect for both, or `tsc` fails on the layers), type-checks a program (strict,
// NodeNext) and runs it under plain `node`. The optional peers present are `openai` and `ioredis`; the OpenTelemetry
// packages and `@effect/ai` are absent (their subpaths must say so), and so is `@effect/platform-node`.

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const exec = promisify(execFile)
/** Runs a command; a failure carries its output (tsc writes its errors to stdout). */
const run = (file: string, args: ReadonlyArray<string>, options: Parameters<typeof exec>[2]) =>
  exec(file, [...args], { maxBuffer: 64 * 1024 * 1024, ...options }).then(
    ({ stdout }) => ({ stdout: String(stdout) }),
    (error: { stdout?: unknown; stderr?: unknown; message: string }) => {
      throw new Error(`${error.message}\n${String(error.stdout ?? "")}\n${String(error.stderr ?? "")}`)
    }
  )
const effectPatch = "3.22.3"
const devPins = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).devDependencies as Record<string, string>
const pinned = (name: string) => `${name}@${devPins[name]}`

// Only the cache and registry settings of an enclosing `npm test` reach the nested npm: its prefix would not.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) =>
  !key.startsWith("npm_") || ["npm_config_cache", "npm_config_registry", "npm_config_userconfig"].includes(key)
))
const npm = (args: ReadonlyArray<string>, cwd: string) =>
  run("npm", args, { cwd, env })

const program = `
import { Effect, Layer, Redacted } from "effect"
import * as Root from "effect-llm-resilience"
import { InvalidOptions, Llm, LlmClient, Pipeline, Retry } from "effect-llm-resilience"
import * as ChaosServer from "effect-llm-resilience/ChaosServer"
import * as FakeLlm from "effect-llm-resilience/FakeLlm"
import * as Testing from "effect-llm-resilience/Testing"
import * as OpenAi from "effect-llm-resilience/OpenAi"
import * as Redis from "effect-llm-resilience/Redis"
import { createRequire } from "node:module"

const ask = (content: string) =>
  LlmClient.complete(new Llm.ChatRequest({ model: "gpt-4o-mini", messages: [{ role: "user", content }], temperature: 0 }))

// The app's Layer and Effect types are the library's: a second copy of effect fails these annotations.
const Fake: Layer.Layer<LlmClient.LlmClient> = LlmClient.layerWith(Retry.policy({ maxRetries: 1 })).pipe(
  Layer.provide(FakeLlm.layer(FakeLlm.reply("pong")))
)
const Piped: Layer.Layer<LlmClient.LlmClient, InvalidOptions.InvalidOptions> = Pipeline.layerMemory({ cache: { ttl: "1 minute" } }).pipe(
  Layer.provide(FakeLlm.layer(FakeLlm.reply("cached")))
)
const Chaos = Layer.unwrapEffect(Effect.map(Testing.ChaosServer.ChaosServer, (server) =>
  OpenAi.layer({ apiKey: Redacted.make("sk-package-test"), baseURL: server.baseURL })
)).pipe(Layer.provideMerge(ChaosServer.layer({ seed: 1 })))

const viaChaos = Effect.gen(function* () {
  const response = yield* ask("ping")
  const server = yield* ChaosServer.ChaosServer
  const stats = yield* server.stats
  return \`\${response.servedFrom}:\${stats.requests}\`
}).pipe(Effect.provide(Chaos))

const cached = Effect.gen(function* () {
  const first = yield* ask("same")
  const second = yield* ask("same")
  return [first.servedFrom, second.servedFrom]
}).pipe(Effect.provide(Piped))

const importError = async (specifier: string): Promise<string> => {
  try {
    await import(specifier)
    return "loaded"
  } catch (error) {
    return error instanceof Error ? error.message : String(error)
  }
}

const req = createRequire(import.meta.url)
const libraryRequire = createRequire(req.resolve("effect-llm-resilience/package.json"))
const report = {
  fake: (await Effect.runPromise(ask("ping").pipe(Effect.provide(Fake)))).content,
  cached: await Effect.runPromise(cached),
  chaos: await Effect.runPromise(viaChaos),
  sameModules: Root.ChaosServer.layer === ChaosServer.layer && Testing.FakeLlm.reply === Root.FakeLlm.reply,
  redisLayer: typeof Redis.layer,
  oneEffect: libraryRequire.resolve("effect") === req.resolve("effect"),
  effectVersion: req("effect/package.json").version,
  prometheus: await importError(["effect-llm-resilience", "Prometheus"].join("/")),
  otlp: await importError(["effect-llm-resilience", "Otlp"].join("/")),
  effectAi: await importError(["effect-llm-resilience", "EffectAi"].join("/")),
  gateway: await importError(["effect-llm-resilience", "Gateway"].join("/")),
  rootKeys: Object.keys(Root).sort()
}
console.log(JSON.stringify(report))
`

let project = ""
let packed: ReadonlyArray<string> = []

beforeAll(async () => {
  project = mkdtempSync(join(tmpdir(), "effect-llm-resilience-package-"))
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "scratch", private: true, type: "module" }))
  const install = (packages: ReadonlyArray<string>) =>
    npm(["install", "--prefer-offline", "--no-audit", "--no-fund", ...packages], project)
  // The app's own dependencies install while dist/ builds (once: `npm pack` skips the prepack build).
  await Promise.all([
    run(process.execPath, [join(root, "node_modules/tsx/dist/cli.mjs"), "scripts/build.ts"], { cwd: root, env }),
    install([
      `effect@${effectPatch}`, pinned("@effect/platform"), pinned("@effect/experimental"),
      pinned("openai"), pinned("ioredis"), pinned("@types/node")
    ])
  ])
  const { stdout } = await npm(["pack", "--ignore-scripts", "--json", "--pack-destination", project], root)
  const [info] = JSON.parse(stdout) as ReadonlyArray<{ filename: string; files: ReadonlyArray<{ path: string }> }>
  packed = info.files.map((f) => f.path)
  await install([join(project, info.filename)])
}, 180_000)

afterAll(() => {
  if (project !== "") rmSync(project, { recursive: true, force: true })
})

describe("e2e: the packed tarball in a new project", () => {
  it("ships dist (JavaScript, types, guarded entries), the CLI and the docs; no tests", () => {
    for (const file of ["dist/index.js", "dist/index.d.ts", "dist/Testing.js", "dist/entry/Prometheus.js", "dist/bin.js", "bin/cli.js", "README.md"]) {
      expect(packed).toContain(file)
    }
    expect(packed.filter((f) => f.startsWith("test/") || f.startsWith(".doccheck"))).toEqual([])
    expect(existsSync(join(project, "node_modules/@effect/platform-node"))).toBe(false)
  })

  it("type-checks (strict, NodeNext) and runs under plain node with another effect patch", async () => {
    writeFileSync(join(project, "main.ts"), program)
    writeFileSync(join(project, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        strict: true, module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", lib: ["ES2022"],
        types: ["node"], outDir: "out", skipLibCheck: true
      },
      include: ["main.ts"]
    }))
    await run(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", project], { cwd: project })
    const { stdout } = await run(process.execPath, ["out/main.js"], { cwd: project, env })
    const report = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}")
    expect(report).toMatchObject({
      fake: "pong",
      cached: ["provider", "cache"],
      chaos: "provider:1",
      sameModules: true,
      redisLayer: "function",
      oneEffect: true,
      effectVersion: effectPatch
    })
    expect(report.prometheus).toBe(
      "effect-llm-resilience/Prometheus needs the optional peer dependencies @effect/opentelemetry, " +
        "@opentelemetry/exporter-prometheus, @opentelemetry/sdk-metrics: npm i \"@effect/opentelemetry@^0.64.1\" " +
        "\"@opentelemetry/exporter-prometheus@>=0.223.0 <1\" \"@opentelemetry/sdk-metrics@^2.12.0\""
    )
    expect(report.otlp).toMatch(/^effect-llm-resilience\/Otlp needs the optional peer dependency @effect\/opentelemetry: npm i/)
    expect(report.effectAi).toMatch(/^effect-llm-resilience\/EffectAi needs the optional peer dependency @effect\/ai: npm i/)
    // openai and ioredis are installed here, the OpenTelemetry packages are not: the gateway names what it still needs
    expect(report.gateway).toBe(
      "effect-llm-resilience/Gateway needs the optional peer dependencies openai, ioredis, @effect/opentelemetry, " +
        "@opentelemetry/exporter-prometheus, @opentelemetry/sdk-metrics (not installed: @effect/opentelemetry, " +
        "@opentelemetry/exporter-prometheus, @opentelemetry/sdk-metrics): npm i \"@effect/opentelemetry@^0.64.1\" " +
        "\"@opentelemetry/exporter-prometheus@>=0.223.0 <1\" \"@opentelemetry/sdk-metrics@^2.12.0\""
    )
    expect(report.rootKeys).toEqual(expect.arrayContaining(["ChaosServer", "FakeLlm", "Pipeline", "Retry"]))
  }, 120_000)

  it("`npx effect-llm-resilience chaos-server` stops when npx gets SIGTERM", async () => {
    const child = spawn("npx", ["effect-llm-resilience", "chaos-server", "--port", "0"], {
      cwd: project, env, stdio: ["ignore", "pipe", "pipe"]
    })
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = ""
        child.stdout.on("data", (data) => {
          out += String(data)
          const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)
          if (match) resolve(Number(match[1]))
        })
        child.once("exit", (code) => reject(new Error(`npx exited with ${code} before listening: ${out}`)))
      })
      const accepts = () =>
        new Promise<boolean>((resolve) => {
          const socket = connect(port, "127.0.0.1")
          socket.once("connect", () => (socket.destroy(), resolve(true)))
          socket.once("error", () => resolve(false))
        })
      expect(await accepts()).toBe(true)
      child.kill("SIGTERM")
      let open = true
      for (let i = 0; i < 150 && open; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20))
        open = await accepts()
      }
      expect(open).toBe(false)
    } finally {
      child.kill("SIGKILL")
    }
  }, 30_000)
})
