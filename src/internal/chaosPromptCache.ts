/**
 * The ChaosServer's prompt cache, a deterministic model of OpenAI's automatic prompt caching: a prompt is cut into
 * blocks of 1024 tokens (4096 characters of its text at the server's 4 characters a token); the cached tokens of a
 * request are 1024 × the number of leading blocks whose whole prefix an earlier answered request to the same model
 * sent. A prompt under 1024 tokens is never cached, and the first request with a prefix never is either (it fills
 * the cache). The server remembers at most {@link capacity} prefixes, forgetting the oldest first.
 *
 * A lookup also says how many of the prompt's tokens it wrote to the cache (1024 × the blocks it stored that were not
 * there): Anthropic reports those as `cache_creation_input_tokens` and charges them 1.25× the input price.
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

  /**
   * The tokens of `prompt` on `model` read from the cache (`cached`) and written to it (`written`); remembers its
   * prefixes for the requests after it.
   */
  lookup(model: string, prompt: string): { readonly cached: number; readonly written: number } {
    const blocks = Math.floor(prompt.length / BLOCK_CHARS)
    let digest = createHash("sha256").update(model).digest("hex")
    let hits = 0
    let writes = 0
    let missed = false
    for (let k = 0; k < blocks; k++) {
      digest = createHash("sha256").update(digest).update(prompt.slice(k * BLOCK_CHARS, (k + 1) * BLOCK_CHARS)).digest("hex")
      if (!missed && this.seen.has(digest)) hits++
      else missed = true
      if (this.remember(digest)) writes++
    }
    return { cached: hits * BLOCK_TOKENS, written: writes * BLOCK_TOKENS }
  }

  /** Stores a prefix; true when it was not there. */
  private remember(digest: string): boolean {
    if (this.seen.has(digest)) return false
    if (this.seen.size >= capacity) {
      const oldest = this.seen.values().next()
      if (oldest.done !== true) this.seen.delete(oldest.value)
    }
    this.seen.add(digest)
    return true
  }
}
