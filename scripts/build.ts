/**
 * Builds dist/: a clean `tsc -p tsconfig.build.json` (JavaScript, .d.ts and maps), then one guarded entry per subpath
 * with optional peers (`dist/entry/<Module>.js`), which package.json's `exports` point at. `npm run build`
 *
 * A guarded entry imports its module through `internal/peers.js`'s `load`, so a missing optional peer fails with a
 * message naming the subpath, its peers and the `npm i` command; its named exports are the module's own (read from
 * the built module), and its types are the module's .d.ts.
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { optionalPeers } from "../src/internal/peers.js"

const root = resolve(import.meta.dirname, "..")
const dist = join(root, "dist")
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  readonly name: string
  readonly peerDependencies: Readonly<Record<string, string>>
}

rmSync(dist, { recursive: true, force: true })
execFileSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], {
  stdio: "inherit"
})

const entry = (module: string, names: ReadonlyArray<string>): string => {
  const peers = Object.fromEntries(optionalPeers[module].map((name) => {
    const range = pkg.peerDependencies[name]
    if (range === undefined) throw new Error(`${module}: ${name} is not a peer dependency in package.json`)
    return [name, range]
  }))
  return [
    `// Written by scripts/build.ts: ${module}.js, or an error naming the optional peers it needs.`,
    `import { load } from "../internal/peers.js"`,
    `const loaded = await load(${JSON.stringify(`${pkg.name}/${module}`)}, ${JSON.stringify(peers)}, () => import("../${module}.js"))`,
    `export const { ${names.join(", ")} } = loaded`,
    ""
  ].join("\n")
}

mkdirSync(join(dist, "entry"))
for (const module of Object.keys(optionalPeers)) {
  const names = Object.keys(await import(pathToFileURL(join(dist, `${module}.js`)).href) as object).sort()
  writeFileSync(join(dist, "entry", `${module}.js`), entry(module, names))
}
console.log(`dist/ built; guarded entries: ${Object.keys(optionalPeers).join(", ")}`)
