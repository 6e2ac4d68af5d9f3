#!/usr/bin/env node
// Launcher of the `effect-llm-resilience` command: runs the built dist/bin.js, or, in a checkout without a
// build, src/bin.ts through tsx (as `node --import tsx src/bin.ts` would).
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const built = join(root, "dist", "bin.js")

if (existsSync(built)) {
  await import(pathToFileURL(built).href)
} else {
  let register
  try {
    ;({ register } = await import("tsx/esm/api"))
  } catch {
    console.error("effect-llm-resilience: dist/bin.js is missing and tsx is not installed; run `npm run build` first.")
    process.exit(1)
  }
  register()
  await import(pathToFileURL(join(root, "src", "bin.ts")).href)
}
