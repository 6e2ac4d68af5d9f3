/**
 * The ChaosServer's prompt cache, a deterministic model of OpenAI's automatic prompt caching: a prompt is cut into
 * blocks of 1024 tokens (4096 characters of its text at the server's 4 characters a token); the cached tokens of a
 * request are 1024 × the number of leading blocks whose whole prefix an earlier answered request to the same model
 * sent. A prompt under 1024 tokens is never cached, and the first request with a prefix never is either (it fills
 * the cache). The server remembers at most {@link capacity} prefixes, forgetting the oldest first.
 */
import { createHash } from "node:crypto"

/** Tokens of one cache block, as OpenAI's minimum cacheable prompt. */
export const BLOCK_TOKENS = 1024
/** Characters of one block (the server counts 4 characters a token). */
export const BLOCK_CHARS = BLOCK_TOKENS * 4
/** The prefixes remembered. */
export const capacity = 100_000

export class PromptCache {
  private readonly seen = new Set<string>()

  /** The cached tokens of `prompt` on `model`; remembers its prefixes for the requests after it. */
  lookup(model: string, prompt: string): number {
    const blocks = Math.floor(prompt.length / BLOCK_CHARS)
    let digest = createHash("sha256").update(model).digest("hex")
    let hits = 0
    let missed = false
    for (let k = 0; k < blocks; k++) {
      digest = createHash("sha256").update(digest).update(prompt.slice(k * BLOCK_CHARS, (k + 1) * BLOCK_CHARS)).digest("hex")
      if (!missed && this.seen.has(digest)) hits++
      else missed = true
      this.remember(digest)
    }
    return hits * BLOCK_TOKENS
  }

  private remember(digest: string): void {
    if (this.seen.has(digest)) return
    if (this.seen.size >= capacity) {
      const oldest = this.seen.values().next()
      if (oldest.done !== true) this.seen.delete(oldest.value)
    }
    this.seen.add(digest)
  }
}
