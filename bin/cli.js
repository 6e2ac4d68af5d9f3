#!/usr/bin/env node
// Launcher of the `effect-llm-resilience` command. Installed (under node_modules) it runs the built dist/bin.js; in a
// checkout of the repository it runs src/bin.ts through tsx, so the command is never an old build of the sources
// (and falls back to dist/bin.js when tsx is missing). Either way the command runs in this very process: signals
// sent to it reach the server, and no child is left behind.
import { existsSync } from "node:fs"
import { dirname, join, sep } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const built = join(root, "dist", "bin.js")
const source = join(root, "src", "bin.ts")
const installed = root.split(sep).includes("node_modules")

const tsx = async () => {
  try {
    return (await import("tsx/esm/api")).register
  } catch {
    return undefined
  }
}

const register = installed || !existsSync(source) ? undefined : await tsx()
if (register !== undefined) {
  register()
  await import(pathToFileURL(source).href)
} else if (existsSync(built)) {
  await import(pathToFileURL(built).href)
} else {
  console.error("effect-llm-resilience: dist/bin.js is missing and tsx is not installed; run `npm run build` first.")
  process.exit(1)
}
