import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import * as ChaosServer from "../../src/ChaosServer.js"

// Every TypeScript example of the README runs as written: `OpenAi.layerConfig()` reads OPENAI_API_KEY and
// OPENAI_BASE_URL, pointed here at a local ChaosServer instead of the real API.

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..")
const readme = readFileSync(join(root, "README.md"), "utf8")
const snippets = [...readme.matchAll(/```ts([^\n]*)\n([\s\S]*?)```/g)]
  .filter((block) => !block[1].includes("no-check"))
  .map((block) => ({ line: readme.slice(0, block.index).split("\n").length, code: block[2] }))

const runSnippet = (file: string, baseURL: string) =>
  Effect.async<{ readonly code: number; readonly stdout: string; readonly stderr: string }>((resume) => {
    const child = execFile(process.execPath, ["--import", "tsx", file], {
      cwd: root,
      env: { ...process.env, OPENAI_API_KEY: "sk-readme", OPENAI_BASE_URL: baseURL },
      timeout: 60_000
    }, (error, stdout, stderr) => resume(Effect.succeed({ code: error === null ? 0 : child.exitCode ?? 1, stdout, stderr })))
  })

describe("e2e: the README's examples run as written (against a local ChaosServer)", () => {
  it("there are examples to run", () => {
    expect(snippets.length).toBeGreaterThanOrEqual(2)
  })

  it.live("each one exits 0 and prints its answer; the cache example prints a provider answer, then a cache hit", () =>
    Effect.scoped(Effect.gen(function* () {
      const server = yield* ChaosServer.make({ seed: 5 })
      const dir = join(root, ".scratch", `readme-${process.pid}`)
      yield* Effect.acquireRelease(
        Effect.sync(() => mkdirSync(dir, { recursive: true })),
        () => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
      )
      const outputs = yield* Effect.forEach(snippets, ({ code, line }) => {
        const file = join(dir, `readme_${line}.ts`)
        writeFileSync(file, code
          .replace(/from "effect-llm-resilience\/([A-Za-z]+)"/g, `from "../../src/$1.js"`)
          .replaceAll(`from "effect-llm-resilience"`, `from "../../src/index.js"`))
        return Effect.map(runSnippet(file, server.baseURL), (result) => ({ line, ...result }))
      }, { concurrency: 2 })
      for (const { code, line, stderr, stdout } of outputs) {
        expect({ line, code, stderr }).toEqual({ line, code: 0, stderr: "" })
        expect(stdout.trim().length, `README.md:${line} printed nothing`).toBeGreaterThan(0)
      }
      expect(outputs.some((o) => o.stdout.includes("[ 'provider', 'cache' ]"))).toBe(true)
      expect((yield* server.stats).requests).toBeGreaterThanOrEqual(snippets.length)
    })), 120_000)
})
