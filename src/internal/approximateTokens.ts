/** Tokens of a text at ≈ 4 characters a token (OpenAI's rule of thumb), rounded up. */
export const approximateTokens = (text: string): number => Math.ceil(text.length / 4)

/** Per-message chat framing (role and separators) in OpenAI's chat format. */
export const MESSAGE_OVERHEAD_TOKENS = 3
/** Tokens that prime every assistant reply. */
export const REPLY_PRIMING_TOKENS = 3

/** Approximate prompt tokens of a conversation, including chat framing. */
export const approximateMessageTokens = (
  messages: ReadonlyArray<{ readonly content: string; readonly name?: string | undefined }>
): number => {
  let total = REPLY_PRIMING_TOKENS
  for (const message of messages) {
    total += MESSAGE_OVERHEAD_TOKENS + approximateTokens(message.content)
    if (message.name !== undefined) total += 1 + approximateTokens(message.name)
  }
  return total
}
