/**
 * The one definition of "the stream has started", shared by Retry, Fallback, Timeout (`firstToken`) and every
 * other rule that must know whether anything of an answer has gone downstream.
 *
 * A chat chunk is progress when it carries text, a finish reason or tool calls. OpenAI-style servers open every
 * stream with an empty `{ role: "assistant", content: "" }` delta, and some send empty keep-alive deltas: those say
 * nothing about the answer, so a stream that fails after them can still be retried or handed to another model, and
 * a `firstToken` deadline keeps waiting for the first real delta. Elements that are not chat chunks (a generic
 * combinator over any stream) always count.
 */
import { Chunk } from "effect"

interface ChunkLike {
  readonly content: string
  readonly model: string
  readonly finishReason?: string | undefined
  readonly toolCalls?: ReadonlyArray<unknown> | undefined
}

const isChunkLike = (element: unknown): element is ChunkLike =>
  typeof element === "object" && element !== null &&
  typeof (element as { content?: unknown }).content === "string" &&
  typeof (element as { model?: unknown }).model === "string"

/** Whether one element of a stream is progress (see the module comment). */
export const isProgress = (element: unknown): boolean => {
  if (!isChunkLike(element)) return true
  return element.content.length > 0 || element.finishReason !== undefined ||
    (element.toolCalls !== undefined && element.toolCalls.length > 0)
}

/** Whether a pulled batch of elements holds any progress. */
export const hasProgress = (elements: Chunk.Chunk<unknown>): boolean => Chunk.some(elements, isProgress)
