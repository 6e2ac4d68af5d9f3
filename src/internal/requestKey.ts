/**
 * Canonical request hashing and tenant scoping for the response cache and idempotency keys.
 *
 * Principles:
 * - Deny-list, not allow-list: every field of a request is part of the hash except the three that do not change the
 *   answer (`user`, `idempotencyKey`, `metadata`). A field added to `ChatRequest` later is keyed by default, so an
 *   output-affecting field can never be forgotten.
 * - Two spellings share a key only when every OpenAI-compatible server treats them the same: absent ≡ undefined,
 *   `stop: []` ≡ absent (and stop sequences are a set), `tools: []` ≡ absent, `toolCalls: []` ≡ absent,
 *   `presencePenalty` / `frequencyPenalty` 0 ≡ absent, `responseFormat: { type: "text" }` ≡ absent, object key order
 *   is irrelevant. `temperature`, `topP`, `maxTokens`, `seed` and `toolChoice` are NOT defaulted: an absent
 *   temperature is 1 on OpenAI but 0.8 on Ollama, so "absent" and "1" stay apart. A missed share costs one call; a
 *   false share serves the wrong answer.
 * - The scope (user / tenant) is always part of a key and only ever appears hashed; the prompt only appears hashed.
 */
import { sha256Hex } from "./hash.js"
import type { ChatRequest } from "../Llm.js"

/** Fields that never change the answer: they are left out of the request hash. */
export const nonOutputFields: ReadonlySet<string> = new Set(["user", "idempotencyKey", "metadata"])

const NEUTRAL_ZERO_FIELDS: ReadonlySet<string> = new Set(["presencePenalty", "frequencyPenalty"])
const SET_LIKE_FIELDS: ReadonlySet<string> = new Set(["stop"])
const EMPTY_IS_ABSENT: ReadonlySet<string> = new Set(["stop", "tools", "toolCalls"])

const isPlainObject = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

type WithToJson = { readonly toJSON: (key: string) => unknown }
const hasToJson = (u: object): u is WithToJson => typeof (u as Partial<WithToJson>).toJSON === "function"

const ARRAY_INDEX = /^(?:0|[1-9][0-9]*)$/
const isArrayIndex = (key: string): boolean => ARRAY_INDEX.test(key) && Number(key) <= 4_294_967_294

// The order the keys of a copy made by inserting them sorted would have (the order keys were always hashed in): a
// JavaScript object lists array-index keys first, ascending, whatever their insertion order; `Object.keys` of the
// source already does, so only the keys after them are sorted.
const orderedKeys = (record: Record<string, unknown>): Array<string> => {
  const keys = Object.keys(record)
  let indices = 0
  while (indices < keys.length && isArrayIndex(keys[indices])) indices++
  if (indices === 0) return keys.sort()
  return indices === keys.length ? keys : [...keys.slice(0, indices), ...keys.slice(indices).sort()]
}

// `JSON.stringify` with object keys sorted, written out: a replacer function makes the native one several times
// slower (it copies every object to sort it). Same output: `toJSON` first, undefined/function/symbol members
// dropped (null in arrays), non-finite numbers as null, a BigInt refused.
const serialize = (input: unknown, key: string): string | undefined => {
  const value = typeof input === "object" && input !== null && hasToJson(input) ? input.toJSON(key) : input
  switch (typeof value) {
    case "string":
      return JSON.stringify(value)
    case "number":
      return Number.isFinite(value) ? JSON.stringify(value) : "null"
    case "boolean":
      return value ? "true" : "false"
    case "bigint":
      throw new TypeError("Do not know how to serialize a BigInt")
    case "object": {
      if (value === null) return "null"
      if (Array.isArray(value)) {
        let out = "["
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ","
          out += serialize(value[i], String(i)) ?? "null"
        }
        return out + "]"
      }
      const record = value as Record<string, unknown>
      const keys = orderedKeys(record)
      let out = "{"
      let first = true
      for (const name of keys) {
        const member = serialize(record[name], name)
        if (member === undefined) continue
        out += first ? `${JSON.stringify(name)}:${member}` : `,${JSON.stringify(name)}:${member}`
        first = false
      }
      return out + "}"
    }
    default:
      return undefined
  }
}

/** JSON with object keys sorted at every depth and undefined members dropped, as `JSON.stringify` writes the rest. */
export const canonicalJson = (value: unknown): string => serialize(value, "") ?? "null"

const normaliseField = (name: string, value: unknown): unknown => {
  if (value === undefined) return undefined
  if (EMPTY_IS_ABSENT.has(name) && Array.isArray(value) && value.length === 0) return undefined
  if (NEUTRAL_ZERO_FIELDS.has(name) && value === 0) return undefined
  if (SET_LIKE_FIELDS.has(name) && Array.isArray(value)) return [...new Set(value as ReadonlyArray<string>)].sort()
  if (name === "responseFormat" && isPlainObject(value) && value.type === "text" && Object.keys(value).length === 1) {
    return undefined
  }
  return value
}

const normaliseMessage = (message: unknown): unknown => {
  if (!isPlainObject(message)) return message
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(message)) {
    const value = normaliseField(key, message[key])
    if (value !== undefined) out[key] = value
  }
  return out
}

/** The output-affecting fields of a request, normalised (see the module doc). */
export const outputFields = (request: ChatRequest): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  const source = request as unknown as Record<string, unknown>
  for (const key of Object.keys(source)) {
    if (nonOutputFields.has(key)) continue
    const value = key === "messages"
      ? (source[key] as ReadonlyArray<unknown>).map(normaliseMessage)
      : normaliseField(key, source[key])
    if (value !== undefined) out[key] = value
  }
  return out
}

const sha256 = sha256Hex

/** SHA-256 (hex) of the canonical JSON of every output-affecting field. Version-prefixed. */
export const requestHash = (request: ChatRequest): string => {
  let hash = requestHashes.get(request)
  if (hash === undefined) {
    hash = sha256(`effect-llm-resilience/request/v1\n${canonicalJson(outputFields(request))}`)
    requestHashes.set(request, hash)
  }
  return hash
}

// A request is immutable: its hash is computed once, however many policies (cache, idempotency) key by it.
const requestHashes = new WeakMap<ChatRequest, string>()

/** A function naming the tenant a request belongs to. */
export type ScopeFn = (request: ChatRequest) => string

/** The scope of an anonymous request (no `user`): a scope of its own, never shared with any user. */
export const ANONYMOUS_SCOPE = "anonymous"

/** `user:<id>` for a request with a `user`, else {@link ANONYMOUS_SCOPE}. */
export const defaultScope: ScopeFn = (request) =>
  request.user === undefined ? ANONYMOUS_SCOPE : `user:${request.user}`

const scopeHashes = new Map<string, string>()
const SCOPE_MEMO_LIMIT = 10_000

/** The scope hashed (128 bits, hex), so a user id never appears in a key. Memoized: scopes repeat. */
export const scopeHash = (scope: string): string => {
  let hash = scopeHashes.get(scope)
  if (hash === undefined) {
    hash = sha256(`effect-llm-resilience/scope/v1\n${scope}`).slice(0, 32)
    if (scopeHashes.size >= SCOPE_MEMO_LIMIT) scopeHashes.clear()
    scopeHashes.set(scope, hash)
  }
  return hash
}

/** `<namespace>:<scope hash>:<request hash>`. */
export const scopedKey = (namespace: string, scope: string, hash: string): string =>
  `${namespace}:${scopeHash(scope)}:${hash}`

/** The hashed form of a caller-supplied idempotency key (it may carry user data). */
export const idempotencyKeyHash = (key: string): string =>
  sha256(`effect-llm-resilience/idempotency-key/v1\n${key}`)

const SNAPSHOT_SUFFIX = /^(?:\d{4}-\d{2}-\d{2}|\d{4})$/

/**
 * True when `answered` is `requested` or a dated snapshot of it (`gpt-4o` → `gpt-4o-2024-08-06`, `gpt-4-0613`):
 * providers report the snapshot that served an alias. Any other name is another model (a fallback's answer).
 */
export const answeredByRequestedModel = (requested: string, answered: string): boolean =>
  answered === requested ||
  (answered.startsWith(`${requested}-`) && SNAPSHOT_SUFFIX.test(answered.slice(requested.length + 1)))

/** The default cacheability rule: deterministic requests only (temperature 0 or a seed). */
export const isDeterministic = (request: ChatRequest): boolean =>
  request.temperature === 0 || request.seed !== undefined
