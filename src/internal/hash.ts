/**
 * SHA-256 for keys (cache, idempotency, budget scopes): Node's one-shot `crypto.hash` where it exists (Node ≥ 20.12,
 * about 2.5× faster than `createHash` for short inputs), else `createHash`. Same output either way.
 */
import * as Crypto from "node:crypto"

type OneShot = (algorithm: string, data: string, outputEncoding: "hex") => string

const oneShot = (Crypto as unknown as { readonly hash?: OneShot }).hash

/** SHA-256 of `text` (UTF-8), hex. */
export const sha256Hex: (text: string) => string = oneShot !== undefined
  ? (text) => oneShot("sha256", text, "hex")
  : (text) => Crypto.createHash("sha256").update(text).digest("hex")

/**
 * A memo for hashes of values that repeat (user ids, scopes): at most `limit` entries, cleared when full (so a
 * stream of distinct values costs one hash each and never grows the heap past the limit).
 */
export const memoized = <A>(f: (value: string) => A, limit = 10_000): (value: string) => A => {
  const memo = new Map<string, A>()
  return (value) => {
    let found = memo.get(value)
    if (found === undefined) {
      found = f(value)
      if (memo.size >= limit) memo.clear()
      memo.set(value, found)
    }
    return found
  }
}
