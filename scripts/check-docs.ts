/**
 * Type-checks every ```ts snippet of README.md and docs/*.md against the sources: each snippet becomes a module in
 * a scratch folder (package imports rewritten to the sources), then `tsc --noEmit` runs over them. A snippet that is
 * deliberately partial is fenced as ```ts no-check. `npx tsx scripts/check-docs.ts`
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"

const root = resolve(import.meta.dirname, "..")
const out = join(root, ".doccheck")
rmSync(out, { recursive: true, force: true })
mkdirSync(out)

const files = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)]
const index: Array<string> = []
let count = 0
for (const file of files) {
  const text = readFileSync(join(root, file), "utf8")
  const blocks = [...text.matchAll(/```(ts|typescript)([^\n]*)\n([\s\S]*?)```/g)]
  blocks.forEach((block, i) => {
    if (block[2].includes("no-check")) return
    const line = text.slice(0, block.index).split("\n").length
    const code = block[3]
      .replace(/from "effect-llm-resilience\/([A-Za-z]+)"/g, `from "../src/$1.js"`)
      .replaceAll(`from "effect-llm-resilience"`, `from "../src/index.js"`)
    const name = `${file.replace(/[/.]/g, "_")}_${i}.ts`
    writeFileSync(join(out, name), `// ${file}:${line}\nexport {}\n${code}`)
    index.push(`${name} ← ${file}:${line}`)
    count++
  })
}
writeFileSync(
  join(out, "tsconfig.json"),
  JSON.stringify({
    extends: "../tsconfig.json",
    compilerOptions: { noUnusedLocals: false, noEmit: true },
    include: ["*.ts"]
  })
)
try {
  execFileSync(join(root, "node_modules/.bin/tsc"), ["-p", out], { stdio: "inherit" })
  console.log(`${count} snippets type-check`)
  rmSync(out, { recursive: true, force: true })
} catch {
  console.error(`\nSome of the ${count} snippets do not type-check (files in .doccheck/, first line names the source).`)
  process.exit(1)
}
