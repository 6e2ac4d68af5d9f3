/**
 * The in-process key stores: `makeMemory` / `layerMemory` (a `Ref`, each method one atomic `Ref.modify` running the
 * pure step below) and the key file of a single process (`readKeyFile`, `writeKeyFile`, and `makeFile`, the store the
 * CLI uses when no Redis is configured: each method reads the file, runs the same pure step and writes it back).
 */
import { randomBytes } from "node:crypto"
import { readFile, rename, rm, stat, writeFile } from "node:fs/promises"
import { Effect, Either, HashMap, Layer, Option, Ref, Schema } from "effect"
import { InvalidOptions } from "../../InvalidOptions.js"
import {
  byCreation,
  decodeRecords,
  type KeyRecord,
  KeyRecordSchema,
  KeyStore,
  KeyStoreError,
  type KeyStoreService
} from "./keys.js"

/** Every record by hash, and the hash of every id. */
export interface KeyState {
  readonly byHash: HashMap.HashMap<string, KeyRecord>
  readonly hashOfId: HashMap.HashMap<string, string>
}

/** The state holding `records` (already checked: no id or hash twice). */
export const stateOf = (records: ReadonlyArray<KeyRecord>): KeyState => ({
  byHash: HashMap.fromIterable(records.map((r) => [r.hash, r] as const)),
  hashOfId: HashMap.fromIterable(records.map((r) => [r.id, r.hash] as const))
})

/** The records of a state, oldest first. */
export const recordsOf = (state: KeyState): ReadonlyArray<KeyRecord> => [...HashMap.values(state.byHash)].sort(byCreation)

/** Adds a record unless its id or hash is already there. */
export const putStep = (state: KeyState, record: KeyRecord): readonly [boolean, KeyState] =>
  HashMap.has(state.byHash, record.hash) || HashMap.has(state.hashOfId, record.id)
    ? [false, state]
    : [true, {
      byHash: HashMap.set(state.byHash, record.hash, record),
      hashOfId: HashMap.set(state.hashOfId, record.id, record.hash)
    }]

/** Marks the key revoked at `now`; an earlier revocation stands. False when there is no such id. */
export const revokeStep = (state: KeyState, id: string, now: number): readonly [boolean, KeyState] => {
  const record = Option.flatMap(HashMap.get(state.hashOfId, id), (hash) => HashMap.get(state.byHash, hash))
  if (Option.isNone(record)) return [false, state]
  const found = record.value
  if (found.revokedAt !== undefined && found.revokedAt <= now) return [true, state]
  return [true, { ...state, byHash: HashMap.set(state.byHash, found.hash, { ...found, revokedAt: now }) }]
}

const target = "Gateway keys"

/** A record that breaks the Schema is refused by every store (the Redis one could not encode it). */
const checked = (record: KeyRecord): Effect.Effect<KeyRecord, KeyStoreError> =>
  Effect.mapError(
    Schema.validate(KeyRecordSchema, { errors: "all" })(record),
    (error) => new KeyStoreError({ operation: "put", cause: InvalidOptions.fromParseError("Gateway key", error) })
  )

/** A store in memory holding `records` (each decoded by the Schema; no id or hash twice, else `InvalidOptions`). */
export const makeMemory = (records: ReadonlyArray<KeyRecord>): Effect.Effect<KeyStoreService, InvalidOptions> =>
  Effect.flatMap(decodeRecords(records, target), (initial) =>
    Effect.map(Ref.make(stateOf(initial)), (ref): KeyStoreService => ({
      get: (hash) => Ref.modify(ref, (state) => [HashMap.get(state.byHash, hash), state]),
      put: (record) => Effect.flatMap(checked(record), (valid) => Ref.modify(ref, (state) => putStep(state, valid))),
      list: Ref.modify(ref, (state) => [recordsOf(state), state]),
      revoke: (id, now) => Ref.modify(ref, (state) => revokeStep(state, id, now))
    })))

/** The `KeyStore` in memory, holding `records` (fails with `InvalidOptions` on a bad or repeated record). */
export const layerMemory = (records: ReadonlyArray<KeyRecord>): Layer.Layer<KeyStore, InvalidOptions> =>
  Layer.effect(KeyStore, makeMemory(records))

// ---------------------------------------------------------------------------------------------------------------
// The key file: a JSON array of records

const isMissing = (error: unknown): boolean =>
  typeof error === "object" && error !== null && "code" in error && error.code === "ENOENT"

const parseJson = (path: string, text: string): Either.Either<unknown, KeyStoreError> =>
  Either.try({
    try: () => JSON.parse(text) as unknown,
    catch: (error) => new KeyStoreError({ operation: `read ${path}`, cause: error })
  })

/**
 * The records of a key file (a JSON array of records), each decoded by the Schema: a bad record fails with
 * `InvalidOptions` listing every bad path (`3.budgets.0.period`), an unreadable file with `KeyStoreError`. With
 * `missing: "empty"` a file that does not exist holds no key (the CLI's first `create`); by default it is an error.
 */
export const readKeyFile = (
  path: string,
  options: { readonly missing?: "fail" | "empty" } = {}
): Effect.Effect<ReadonlyArray<KeyRecord>, KeyStoreError | InvalidOptions> =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").then((text): string | undefined => text, (error: unknown) => {
      if (options.missing === "empty" && isMissing(error)) return undefined
      throw error
    }),
    catch: (error) => new KeyStoreError({ operation: `read ${path}`, cause: error })
  }).pipe(
    Effect.flatMap((text) =>
      text === undefined
        ? Effect.succeed([])
        : Effect.flatMap(parseJson(path, text), (json) => decodeRecords(json, `Key file ${path}`))
    )
  )

/**
 * Writes a key file: the records oldest first, as JSON, readable by its owner only (mode 0600), replaced in one
 * rename so a reader never sees half a file.
 */
export const writeKeyFile = (path: string, records: ReadonlyArray<KeyRecord>): Effect.Effect<void, KeyStoreError> =>
  Effect.tryPromise({
    try: async () => {
      const encoded = [...records].sort(byCreation).map((r) => Schema.encodeSync(KeyRecordSchema)(r))
      const temporary = `${path}.${randomBytes(6).toString("hex")}.tmp`
      try {
        await writeFile(temporary, `${JSON.stringify(encoded, null, 2)}\n`, { mode: 0o600, flag: "wx" })
        await rename(temporary, path)
      } catch (error) {
        await rm(temporary, { force: true })
        throw error
      }
    },
    catch: (error) => new KeyStoreError({ operation: `write ${path}`, cause: error })
  })

/** The identity of a file's current content: a rename gives a new inode, a write a new mtime or size. */
const versionOf = (path: string): Promise<string | undefined> =>
  stat(path).then(
    (s) => `${s.ino}:${s.mtimeMs}:${s.size}`,
    (error: unknown) => {
      if (isMissing(error)) return undefined
      throw error
    }
  )

/**
 * The store over a key file: each method reads the file (a missing file holds no key), runs the memory store's step
 * and writes the file back when it changed, so `gateway keys` and a running gateway (behind `keysCache.cached`) see
 * each other's changes. A file whose inode, mtime and size are those of the last read is not parsed again. Steps of
 * this process are serialized; two processes writing one file at once may lose one's change (use the Redis store for
 * that). A record in the file that does not decode fails the method with `KeyStoreError` (its cause the
 * `InvalidOptions`, every bad path listed).
 */
export const makeFile = (path: string): Effect.Effect<KeyStoreService> =>
  Effect.map(Effect.makeSemaphore(1), (lock): KeyStoreService => {
    let last: { readonly version: string | undefined; readonly state: KeyState } | undefined
    const parse = readKeyFile(path, { missing: "empty" }).pipe(
      Effect.catchTag("InvalidOptions", (error) => Effect.fail(new KeyStoreError({ operation: `read ${path}`, cause: error }))),
      Effect.map(stateOf)
    )
    const read = Effect.tryPromise({
      try: () => versionOf(path),
      catch: (error) => new KeyStoreError({ operation: `read ${path}`, cause: error })
    }).pipe(Effect.flatMap((version) =>
      last !== undefined && version !== undefined && last.version === version
        ? Effect.succeed(last.state)
        : Effect.tap(parse, (state) => Effect.sync(() => void (last = { version, state })))
    ))
    const step = <A>(f: (state: KeyState) => readonly [A, KeyState]) =>
      lock.withPermits(1)(Effect.flatMap(read, (state) => {
        const [answer, next] = f(state)
        return next === state ? Effect.succeed(answer) : Effect.as(writeKeyFile(path, recordsOf(next)), answer)
      }))
    return {
      get: (hash) => Effect.map(read, (state) => HashMap.get(state.byHash, hash)),
      put: (record) => Effect.flatMap(checked(record), (valid) => step((state) => putStep(state, valid))),
      list: Effect.map(read, recordsOf),
      revoke: (id, now) => step((state) => revokeStep(state, id, now))
    }
  })

/**
 * The `KeyStore` of one gateway process from a key file, read once when the layer is built (kept in memory; a
 * change to the file takes effect when the layer is built again).
 */
export const layerKeyFile = (path: string): Layer.Layer<KeyStore, KeyStoreError | InvalidOptions> =>
  Layer.effect(KeyStore, Effect.flatMap(readKeyFile(path), makeMemory))
