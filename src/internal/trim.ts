/**
 * Pure core of prompt trimming: grouping messages into droppable units (an assistant tool call and its tool
 * results are one unit), choosing which units to drop for a strategy, and rebuilding the conversation.
 *
 * Every function works on per-message token counts computed once by the caller, so trimming is linear in the
 * number of messages whatever the size of the conversation.
 */

/** The trimming strategies. */
export type Strategy = "keep-recent" | "keep-system-and-recent" | "middle-out"

/** What the core needs to know of a message. */
export interface MessageShape {
  readonly role: string
  readonly toolCalls?: ReadonlyArray<{ readonly id: string }> | undefined
  readonly toolCallId?: string | undefined
}

/** Messages that are kept or dropped together, in conversation order of their first message. */
export interface Unit {
  readonly indices: ReadonlyArray<number>
  readonly tokens: number
  readonly pinned: boolean
}

/**
 * Groups messages into units: an assistant message with tool calls takes every later tool message answering one
 * of its calls; any other message is a unit of its own. A unit is pinned (never dropped) when it holds a pinned
 * message: the current turn (the last user message and everything after it; the last message when there is no
 * user message) and, by strategy, the system messages ("keep-recent" pins only the first one).
 */
export const groupUnits = (
  messages: ReadonlyArray<MessageShape>,
  counts: ReadonlyArray<number>,
  strategy: Strategy
): Array<Unit> => {
  let lastUser = -1
  let firstSystem = -1
  for (let i = 0; i < messages.length; i++) {
    if (messages[i].role === "user") lastUser = i
    if (firstSystem < 0 && messages[i].role === "system") firstSystem = i
  }
  // Without a user message the last message is the current turn: a prompt is never trimmed to nothing.
  const currentTurn = lastUser >= 0 ? lastUser : messages.length - 1
  const isPinned = (i: number): boolean =>
    i >= currentTurn ||
    (messages[i].role === "system" && (strategy !== "keep-recent" || i === firstSystem))

  const units: Array<{ indices: Array<number>; tokens: number; pinned: boolean }> = []
  const byCallId = new Map<string, number>()
  for (let i = 0; i < messages.length; i++) {
    const message = messages[i]
    const owner = message.role === "tool" && message.toolCallId !== undefined
      ? byCallId.get(message.toolCallId)
      : undefined
    if (owner !== undefined) {
      const unit = units[owner]
      unit.indices.push(i)
      unit.tokens += counts[i]
      unit.pinned = unit.pinned || isPinned(i)
      continue
    }
    units.push({ indices: [i], tokens: counts[i], pinned: isPinned(i) })
    if (message.toolCalls !== undefined) {
      for (const call of message.toolCalls) byCallId.set(call.id, units.length - 1)
    }
  }
  return units
}

/**
 * The order in which droppable units go: oldest first, or for "middle-out" from the middle outwards, so the
 * first turns and the most recent turns go last.
 */
export const dropOrder = (units: ReadonlyArray<Unit>, strategy: Strategy): Array<number> => {
  const droppable: Array<number> = []
  for (let u = 0; u < units.length; u++) if (!units[u].pinned) droppable.push(u)
  if (strategy !== "middle-out") return droppable
  const order: Array<number> = []
  let right = Math.floor(droppable.length / 2)
  let left = right - 1
  while (left >= 0 || right < droppable.length) {
    if (right < droppable.length) order.push(droppable[right++])
    if (left >= 0) order.push(droppable[left--])
  }
  return order
}

/** The outcome of one selection. */
export type Selection =
  | {
    readonly _tag: "Fits"
    /** Units dropped (indices into the unit list). */
    readonly dropped: ReadonlyArray<number>
    readonly droppedMessages: number
    readonly droppedTokens: number
    /** Tokens of the kept messages plus reply priming (marker not included). */
    readonly keptTokens: number
    /** Whether `reserve` more tokens (the marker) fit next to the kept messages. */
    readonly markerFits: boolean
  }
  | { readonly _tag: "TooLong"; readonly minimalTokens: number }

/**
 * Drops units in `order` until the kept tokens plus `reserve` fit `budget`. When every droppable unit is gone
 * and only the marker does not fit, the selection still fits (without the marker). `priming` is counted once.
 */
export const select = (
  units: ReadonlyArray<Unit>,
  order: ReadonlyArray<number>,
  budget: number,
  priming: number,
  reserve: number
): Selection => {
  let total = priming
  for (const unit of units) total += unit.tokens
  if (total <= budget) {
    return { _tag: "Fits", dropped: [], droppedMessages: 0, droppedTokens: 0, keptTokens: total, markerFits: true }
  }
  const dropped: Array<number> = []
  let droppedMessages = 0
  let droppedTokens = 0
  for (const u of order) {
    if (total + reserve <= budget) break
    dropped.push(u)
    droppedMessages += units[u].indices.length
    droppedTokens += units[u].tokens
    total -= units[u].tokens
  }
  if (total > budget) return { _tag: "TooLong", minimalTokens: total }
  return { _tag: "Fits", dropped, droppedMessages, droppedTokens, keptTokens: total, markerFits: total + reserve <= budget }
}

/**
 * Rebuilds the conversation without the dropped units, in the original order, with `marker` (if any) at the
 * place of the first dropped message. Returns the kept messages and the dropped ones.
 */
export const rebuild = <M>(
  messages: ReadonlyArray<M>,
  units: ReadonlyArray<Unit>,
  dropped: ReadonlyArray<number>,
  marker: M | undefined
): { readonly kept: Array<M>; readonly removed: Array<M> } => {
  const isDropped = new Uint8Array(messages.length)
  for (const u of dropped) for (const i of units[u].indices) isDropped[i] = 1
  const kept: Array<M> = []
  const removed: Array<M> = []
  let markerPlaced = marker === undefined
  for (let i = 0; i < messages.length; i++) {
    if (isDropped[i] === 1) {
      if (!markerPlaced) {
        kept.push(marker as M)
        markerPlaced = true
      }
      removed.push(messages[i])
    } else {
      kept.push(messages[i])
    }
  }
  return { kept, removed }
}

/** The default marker text: "[12 earlier messages (3,400 tokens) removed to fit the context window]". */
export const defaultMarker = (dropped: { readonly messages: number; readonly tokens: number }): string =>
  `[${dropped.messages} earlier message${dropped.messages === 1 ? "" : "s"} (${
    dropped.tokens.toLocaleString("en-US")
  } tokens) removed to fit the context window]`
