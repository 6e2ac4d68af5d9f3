/**
 * Runs every benchmark in this folder and prints their tables. `npm run bench`
 * Benchmarks measure wall-clock time (performance.now) on purpose: they are the only place that does.
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const only = process.argv.slice(2)
const files = readdirSync(here)
  .filter((f) => f.endsWith(".bench.ts"))
  .filter((f) => only.length === 0 || only.some((o) => f.includes(o)))
  .sort()

// The library is measured as users run it: compiled JavaScript. (Run through a TypeScript loader, every closure the
// library creates per call would also pay the loader's name-keeping helper, which the published build does not.)
const root = join(here, "..")
const build = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.bench.json")], {
  stdio: "inherit"
})
if (build.status !== 0) {
  console.log("--- compiling src/ and bench/ failed")
  process.exit(1)
}

let failed = 0
for (const file of files) {
  console.log(`\n=== bench/${file} ===`)
  const compiled = join(root, ".bench-build", "bench", file.replace(/\.ts$/, ".js"))
  // The memory stores cap at 100,000 keys, so the memory benchmark's heap is flat from 100,000 calls on:
  // `npm run bench` stops at 200,000 to stay short and still show the plateau (the file alone runs 1,000,000).
  const args = file === "memory.bench.ts" ? ["200000"] : []
  const result = spawnSync(process.execPath, ["--expose-gc", compiled, ...args], {
    stdio: "inherit",
    timeout: 600_000
  })
  if (result.status !== 0) {
    failed++
    console.log(`--- ${file} FAILED (exit ${result.status ?? result.signal})`)
  }
}
if (failed > 0) process.exit(1)
