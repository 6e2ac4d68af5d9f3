import { expect, it } from "@effect/vitest"
import { Effect, Layer, Option } from "effect"
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { encodeRecord, KeyStore } from "../../src/internal/gateway/keys.js"
import { layerKeyFile, layerMemory, makeFile, makeMemory, readKeyFile, writeKeyFile } from "../../src/internal/gateway/keysMemory.js"
import { gatewayKeyStoreContract, recordOf } from "./GatewayKeyStore.contract.js"

gatewayKeyStoreContract("memory", () => layerMemory([]).pipe(Layer.orDie))

const tempFile = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "gateway-keys-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
).pipe(Effect.map((dir) => join(dir, "keys.json")))

gatewayKeyStoreContract("key file", () => Layer.scoped(KeyStore, Effect.flatMap(tempFile, makeFile)))

it.effect("makeMemory refuses a repeated id or hash, and a record that does not decode, listing each path", () =>
  Effect.gen(function*() {
    const a = recordOf().record
    const error = yield* Effect.flip(makeMemory([a, { ...recordOf().record, id: a.id }, { ...recordOf().record, hash: a.hash }]))
    expect(error.issues).toEqual([
      { path: "1.id", message: "The id of key 0 again" },
      { path: "2.hash", message: "The hash of key 0 again" }
    ])
    const bad = yield* Effect.flip(makeMemory([{ ...a, createdAt: -1, hash: "secret" }]))
    expect(bad.issues.map((i) => i.path)).toEqual(["0.hash", "0.createdAt"])
  }))

it.effect("the store starts with the records it is given", () =>
  Effect.gen(function*() {
    const { record } = recordOf()
    const store = yield* makeMemory([record])
    expect(yield* store.get(record.hash)).toEqual(Option.some(record))
  }))

it.scoped("a key file round-trips through writeKeyFile / readKeyFile, oldest first, readable by its owner only", () =>
  Effect.gen(function*() {
    const path = yield* tempFile
    const records = [recordOf({ createdAt: 20 }).record, recordOf({ createdAt: 10, name: "ops", models: ["m"] }).record]
    yield* writeKeyFile(path, records)
    expect(yield* readKeyFile(path)).toEqual([records[1], records[0]])
    expect((yield* Effect.promise(() => stat(path))).mode & 0o777).toBe(0o600)
    const text = yield* Effect.promise(() => readFile(path, "utf8"))
    expect(JSON.parse(text)).toEqual([JSON.parse(encodeRecord(records[1])), JSON.parse(encodeRecord(records[0]))])
  }))

it.scoped("a key file with bad records fails with every bad path; a missing one fails unless told it may be empty", () =>
  Effect.gen(function*() {
    const path = yield* tempFile
    const missing = yield* Effect.flip(readKeyFile(path))
    expect(missing._tag).toBe("KeyStoreError")
    expect(yield* readKeyFile(path, { missing: "empty" })).toEqual([])
    const good = recordOf().record
    yield* Effect.promise(() =>
      writeFile(path, JSON.stringify([good, { ...good, id: "nope", budgets: [{ period: "week" }], extra: true }]))
    )
    const error = yield* Effect.flip(readKeyFile(path))
    expect(error._tag).toBe("InvalidOptions")
    if (error._tag !== "InvalidOptions") return
    expect(error.issues.map((i) => i.path)).toEqual(["1.extra", "1.id", "1.budgets.0.period"])
    expect(error.message).toContain(`Key file ${path}`)
    yield* Effect.promise(() => writeFile(path, "{ not json"))
    expect((yield* Effect.flip(readKeyFile(path)))._tag).toBe("KeyStoreError")
  }))

it.scoped("the key-file store writes each change back; the gateway's layerKeyFile reads what it wrote", () =>
  Effect.gen(function*() {
    const path = yield* tempFile
    const store = yield* makeFile(path)
    const { record, secret } = recordOf()
    expect(yield* store.put(record)).toBe(true)
    expect(yield* store.revoke(record.id, 1_234)).toBe(true)
    const reread = yield* Effect.provide(KeyStore, layerKeyFile(path))
    expect(yield* reread.get(record.hash)).toEqual(Option.some({ ...record, revokedAt: 1_234 }))
    expect(yield* Effect.promise(() => readFile(path, "utf8"))).not.toContain(secret)
  }))

it.scoped("a key file that cannot be written is a KeyStoreError naming the path, and no temporary file is left", () =>
  Effect.gen(function*() {
    const path = yield* tempFile
    // a directory in the way: rename cannot replace it, whoever runs the test
    yield* Effect.promise(() => mkdir(path))
    const store = yield* makeFile(join(path, "..", "keys.json"))
    const error = yield* Effect.flip(store.put(recordOf().record))
    expect(error._tag).toBe("KeyStoreError")
    expect(error.message).toContain(`read ${path}`)
    const direct = yield* Effect.flip(writeKeyFile(path, [recordOf().record]))
    expect(direct.message).toContain(`write ${path}`)
    expect(yield* Effect.promise(() => readdir(join(path, "..")))).toEqual(["keys.json"])
  }))

it.scoped("two key-file stores over one file (the CLI and a running gateway) see each other's changes", () =>
  Effect.gen(function*() {
    const path = yield* tempFile
    const gateway = yield* makeFile(path)
    const cli = yield* makeFile(path)
    const { record } = recordOf()
    expect(yield* gateway.get(record.hash)).toEqual(Option.none())
    yield* cli.put(record)
    expect(yield* gateway.get(record.hash)).toEqual(Option.some(record))
    expect(yield* gateway.get(record.hash)).toEqual(Option.some(record))
    yield* cli.revoke(record.id, 77)
    expect(yield* gateway.get(record.hash)).toEqual(Option.some({ ...record, revokedAt: 77 }))
    // a hand edit that breaks the file is an error, not "no key"
    yield* Effect.promise(() => writeFile(path, "[{}]"))
    expect((yield* Effect.flip(gateway.get(record.hash)))._tag).toBe("KeyStoreError")
  }))
