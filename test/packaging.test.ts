import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import { describe, expect, it } from "vitest"
import { optionalPeers } from "../src/internal/peers.js"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const src = join(root, "src")
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly exports: Readonly<Record<string, string | { readonly types: string; readonly import: string }>>
  readonly peerDependencies: Readonly<Record<string, string>>
  readonly peerDependenciesMeta: Readonly<Record<string, { readonly optional?: boolean }>>
  readonly dependencies: Readonly<Record<string, string>>
  readonly scripts: Readonly<Record<string, string>>
}
/** The modules the root barrel re-exports. */
const rootModules = [...readFileSync(join(src, "index.ts"), "utf8").matchAll(/from "\.\/([A-Za-z]+)\.js"/g)].map((m) => m[1])
/** Every public module: the root's, the test doubles' subpath and the subpaths with optional peers. */
const publicModules = [...rootModules, "Testing", ...Object.keys(optionalPeers)]

// Import and export specifiers (static, dynamic and type-only) as the compiler reads them: comments are not imports.
const importsOf = (file: string): ReadonlyArray<string> => {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true)
  const specifiers: Array<string> = []
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      if (ts.isStringLiteral(node.moduleSpecifier)) specifiers.push(node.moduleSpecifier.text)
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const [argument] = node.arguments
      if (argument !== undefined && ts.isStringLiteral(argument)) specifiers.push(argument.text)
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      specifiers.push(node.argument.literal.text)
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
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

/** Whether an import or export declaration is erased from the JavaScript (`import type`, or every binding `type`). */
const isTypeOnly = (node: ts.ImportDeclaration | ts.ExportDeclaration): boolean => {
  if (ts.isExportDeclaration(node)) {
    const clause = node.exportClause
    return node.isTypeOnly ||
      (clause !== undefined && ts.isNamedExports(clause) && clause.elements.length > 0 && clause.elements.every((e) => e.isTypeOnly))
  }
  const clause = node.importClause
  if (clause === undefined) return false
  const bindings = clause.namedBindings
  return clause.isTypeOnly || (clause.name === undefined && bindings !== undefined && ts.isNamedImports(bindings) &&
    bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly))
}

/** The modules of `src/` that `file` loads when it is loaded: its static relative imports that are not type-only. */
const loadsOf = (file: string): ReadonlyArray<string> => {
  const source = ts.createSourceFile(file, readFileSync(file, "utf8"), ts.ScriptTarget.ES2022, true)
  return source.statements.flatMap((node) =>
    (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined &&
      ts.isStringLiteral(node.moduleSpecifier) && node.moduleSpecifier.text.startsWith(".") && !isTypeOnly(node)
      ? [resolve(dirname(file), node.moduleSpecifier.text.replace(/\.js$/, ".ts"))]
      : []
  )
}

/** Every import cycle among `files` (each as the path from a module back to itself), by depth-first search. */
const cyclesOf = (files: ReadonlyArray<string>, root = src): ReadonlyArray<string> => {
  const edges = new Map(files.map((f) => [f, loadsOf(f)]))
  const done = new Set<string>()
  const path: Array<string> = []
  const cycles: Array<string> = []
  const visit = (file: string): void => {
    const at = path.indexOf(file)
    if (at >= 0) {
      cycles.push([...path.slice(at), file].map((f) => f.slice(root.length + 1)).join(" → "))
      return
    }
    if (done.has(file)) return
    path.push(file)
    for (const next of edges.get(file) ?? []) visit(next)
    path.pop()
    done.add(file)
  }
  files.forEach(visit)
  return cycles
}

const sourceFiles = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

describe("packaging", () => {
  it("the core entry point never loads a driver (openai, ioredis, OpenTelemetry, @effect/ai and its providers)", () => {
    const modules = graph(join(src, "index.ts"))
    expect(modules.size).toBeGreaterThan(10)
    const offenders = [...modules].flatMap(([file, packages]) =>
      packages
        .filter((p) =>
          p === "openai" || p.startsWith("openai/") || p === "ioredis" || p.includes("opentelemetry") ||
          p === "@effect/ai" || p.startsWith("@effect/ai/") || p.startsWith("@effect/ai-")
        )
        .map((p) => `${file}: ${p}`)
    )
    expect(offenders).toEqual([])
    // and the adapter subpath does load it
    expect([...graph(join(src, "OpenAi.ts")).values()].flat()).toContain("openai")
    expect([...graph(join(src, "Prometheus.ts")).values()].flat()).toContain("@opentelemetry/exporter-prometheus")
    // the bridge loads @effect/ai, and none of its provider packages
    const bridge = [...graph(join(src, "EffectAi.ts")).values()].flat()
    expect(bridge.some((p) => p.startsWith("@effect/ai/"))).toBe(true)
    expect(bridge.filter((p) => p.startsWith("@effect/ai-"))).toEqual([])
  })

  it("every export of every public module has JSDoc with an example", () => {
    const missing: Array<string> = []
    for (const name of publicModules.filter((m) => existsSync(join(src, `${m}.ts`)))) {
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

  it("exports lists every public module and nothing else; optional peers go through the guarded entries", () => {
    const expected = Object.fromEntries(publicModules.map((m) => [
      `./${m}`,
      { types: `./dist/${m}.d.ts`, import: m in optionalPeers ? `./dist/entry/${m}.js` : `./dist/${m}.js` }
    ]))
    expect(pkg.exports).toEqual({
      ".": { types: "./dist/index.d.ts", import: "./dist/index.js" },
      ...expected,
      "./package.json": "./package.json"
    })
    expect(pkg.scripts.prepack).toBe("npm run build")
  })

  it("each subpath's optional peers are optional peer dependencies, and its code imports nothing else", () => {
    const required = ["effect", "@effect/platform", "@effect/experimental"]
    for (const name of required) expect(pkg.peerDependenciesMeta[name]?.optional ?? false, name).toBe(false)
    const allowed = new Set([...required, ...Object.keys(pkg.dependencies)])
    const packageOf = (p: string) => p.startsWith("@") ? p.split("/").slice(0, 2).join("/") : p.split("/")[0]
    for (const [module, peers] of Object.entries(optionalPeers)) {
      for (const peer of peers) {
        expect(pkg.peerDependencies[peer], peer).toBeDefined()
        expect(pkg.peerDependenciesMeta[peer]?.optional, peer).toBe(true)
      }
      if (!existsSync(join(src, `${module}.ts`))) continue
      const imported = new Set([...graph(join(src, `${module}.ts`)).values()].flat().map(packageOf))
      const stray = [...imported].filter((p) => !p.startsWith("node:") && !allowed.has(p) && !peers.includes(p))
      expect(stray, module).toEqual([])
    }
  })

  it("the root, ChaosServer, FakeLlm and Testing need only effect, @effect/platform and @effect/experimental", () => {
    const allowed = new Set(["effect", "@effect/platform", "@effect/experimental", ...Object.keys(pkg.dependencies)])
    const packageOf = (p: string) => p.startsWith("@") ? p.split("/").slice(0, 2).join("/") : p.split("/")[0]
    for (const entry of ["index", "ChaosServer", "FakeLlm", "Testing", "bin"]) {
      const imported = [...graph(join(src, `${entry}.ts`)).values()].flat().map(packageOf)
      expect(imported.filter((p) => !p.startsWith("node:") && !allowed.has(p)), entry).toEqual([])
    }
  })

  it("no module of src/ loads itself back through its imports (type-only imports aside)", () => {
    const files = sourceFiles(src)
    expect(files.length).toBeGreaterThan(50)
    expect(cyclesOf(files)).toEqual([])
    // what the check counts: a value import back is a cycle, a type-only one is not
    const dir = mkdtempSync(join(tmpdir(), "cycles-"))
    const write = (name: string, text: string) => writeFileSync(join(dir, name), text)
    write("hub.ts", `import { make } from "./driver.js"\nexport const script = (s: string) => s\nexport const store = make()\n`)
    write("driver.ts", `import { script } from "./hub.js"\nexport const make = () => script("x")\n`)
    write("model.ts", `import type { Engine } from "./engine.js"\nexport type Model = Engine\n`)
    write("engine.ts", `import { type Model } from "./model.js"\nexport interface Engine { readonly m?: Model }\n`)
    const fixture = ["hub.ts", "driver.ts", "model.ts", "engine.ts"].map((f) => join(dir, f))
    expect(cyclesOf(fixture, dir)).toEqual(["hub.ts → driver.ts → hub.ts"])
    rmSync(dir, { recursive: true })
  })
})
