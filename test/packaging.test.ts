import { readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { describe, expect, it } from "vitest"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const src = join(root, "src")

const importsOf = (file: string): ReadonlyArray<string> => {
  const text = readFileSync(file, "utf8")
  const specifiers: Array<string> = []
  const pattern = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"/g
  for (const match of text.matchAll(pattern)) specifiers.push(match[1])
  return specifiers
}

/** Every module reachable from `entry` through relative imports, with the packages each one imports. */
const graph = (entry: string) => {
  const seen = new Map<string, ReadonlyArray<string>>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    const specifiers = importsOf(file)
    seen.set(file, specifiers.filter((s) => !s.startsWith(".")))
    for (const s of specifiers) if (s.startsWith(".")) visit(resolve(dirname(file), s.replace(/\.js$/, ".ts")))
  }
  visit(entry)
  return seen
}

describe("packaging", () => {
  it("the core entry point never loads a driver (openai, ioredis, OpenTelemetry)", () => {
    const modules = graph(join(src, "index.ts"))
    expect(modules.size).toBeGreaterThan(10)
    const offenders = [...modules].flatMap(([file, packages]) =>
      packages
        .filter((p) => p === "openai" || p.startsWith("openai/") || p === "ioredis" || p.includes("opentelemetry"))
        .map((p) => `${file}: ${p}`)
    )
    expect(offenders).toEqual([])
    // and the adapter subpath does load it
    expect([...graph(join(src, "OpenAi.ts")).values()].flat()).toContain("openai")
    expect([...graph(join(src, "Prometheus.ts")).values()].flat()).toContain("@opentelemetry/exporter-prometheus")
  })

  it("every export of every public module has JSDoc with an example", () => {
    const index = readFileSync(join(src, "index.ts"), "utf8")
    const modules = [...index.matchAll(/from "\.\/([A-Za-z]+)\.js"/g)].map((m) => m[1]).concat(["OpenAi", "Redis", "Prometheus"])
    const missing: Array<string> = []
    for (const name of modules) {
      const file = join(src, `${name}.ts`)
      const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true)
      const documented = new Set<string>()
      const undocumented: Array<[string, ts.Statement]> = []
      for (const statement of source.statements) {
        const exported = ts.canHaveModifiers(statement) &&
          ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)
        if (!exported) continue
        const names = ts.isVariableStatement(statement)
          ? statement.declarationList.declarations.map((d) => d.name.getText(source))
          : [(statement as ts.DeclarationStatement).name?.getText(source) ?? "?"]
        const docs = ts.getJSDocCommentsAndTags(statement).map((d) => d.getText(source)).join("\n")
        if (docs.includes("@example")) names.forEach((n) => documented.add(n))
        else undocumented.push([names.join(","), statement])
      }
      // `export type X = typeof X.Type` beside a documented `export const X` shares the value's example.
      for (const [n, statement] of undocumented) {
        if (ts.isTypeAliasDeclaration(statement) && documented.has(n)) continue
        missing.push(`${name}.${n}`)
      }
    }
    expect(missing).toEqual([])
  })
})
