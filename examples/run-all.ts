/**
 * Runs every example in this folder (except the demo) one after the other and fails if any fails.
 * `npm run examples`
 */
import { spawnSync } from "node:child_process"
import { readdirSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

const here = dirname(fileURLToPath(import.meta.url))
const files = readdirSync(here)
  .filter((f) => f.endsWith(".ts") && f !== "run-all.ts" && f !== "demo.ts")
  .sort()

const failed: Array<string> = []
for (const file of files) {
  console.log(`\n=== examples/${file} ===`)
  const started = performance.now()
  const result = spawnSync(process.execPath, ["--import", "tsx", join(here, file)], {
    stdio: "inherit",
    timeout: 60_000
  })
  const ms = Math.round(performance.now() - started)
  if (result.status !== 0) {
    failed.push(file)
    console.log(`--- ${file} FAILED (exit ${result.status ?? result.signal}) in ${ms} ms`)
  } else {
    console.log(`--- ${file} ok in ${ms} ms`)
  }
}
console.log(`\n${files.length - failed.length} passed, ${failed.length} failed`)
if (failed.length > 0) process.exit(1)
