/**
 * The outermost step `LlmClient.decorate` (and so `layerWith` and `Pipeline.layer`) puts above a policy stack: one
 * span per logical call, `chat {model}` (kind client), around every policy, with the GenAI conventions'
 * attributes. Inside another call's span (a stack decorated twice) it opens nothing, so a call has one span however
 * many stacks it passes through. Nothing happens unless spans go anywhere (see `telemetry.ts`).
 */
import { Effect, Exit, Stream, Tracer } from "effect"
import type { ChatChunk, ChatRequest, ChatResponse, ToolCall, Usage } from "../Llm.js"
import type { Complete, StreamFn } from "../LlmClient.js"
import * as LlmMetrics from "../LlmMetrics.js"
import * as Telemetry from "./telemetry.js"

const options = { kind: "client", captureStackTrace: false } as const

const outcomeOf = (response: ChatResponse): Telemetry.Outcome => ({
  model: response.model,
  id: response.id,
  content: response.content,
  finishReason: response.finishReason,
  toolCalls: response.toolCalls,
  usage: response.usage,
  servedFrom: response.servedFrom
})

/** `next` inside a logical call's span. */
export const complete = (info: Telemetry.ProviderInfo, next: Complete): Complete => (request) =>
  Effect.withFiberRuntime((fiber) => {
    if (!Telemetry.isTracing(fiber) || Telemetry.isCallSpan(fiber.currentSpan)) return next(request)
    const content = fiber.getFiberRef(LlmMetrics.captureContent)
    return Effect.useSpan(Telemetry.callSpanName(request), options, (span) => {
      Telemetry.markCall(span)
      Telemetry.setRequest(span, request, info, false, content)
      return Effect.onExit(Effect.withParentSpan(next(request), span), (exit) => {
        Telemetry.setExit(span, exit)
        if (Exit.isSuccess(exit)) Telemetry.setOutcome(span, outcomeOf(exit.value), content)
        return Effect.void
      })
    })
  })

/** What a stream delivered, for the span's attributes at its end. */
class Delivered {
  text = ""
  model: string
  finishReason: string | undefined = undefined
  toolCalls: ReadonlyArray<ToolCall> | undefined = undefined
  usage: Usage | undefined = undefined
  servedFrom: string | undefined = undefined
  constructor(request: ChatRequest, readonly content: boolean) {
    this.model = request.model
  }
  see(chunk: ChatChunk): void {
    if (this.content) this.text += chunk.content
    this.model = chunk.model
    if (chunk.finishReason !== undefined) this.finishReason = chunk.finishReason
    if (chunk.toolCalls !== undefined) this.toolCalls = chunk.toolCalls
    if (chunk.usage !== undefined) this.usage = chunk.usage
    if (chunk.servedFrom !== undefined) this.servedFrom = chunk.servedFrom
  }
  outcome(): Telemetry.Outcome {
    return {
      model: this.model,
      id: undefined,
      content: this.text,
      finishReason: this.finishReason,
      toolCalls: this.toolCalls,
      usage: this.usage,
      servedFrom: this.servedFrom
    }
  }
}

/** `next`'s stream inside a logical call's span, which ends with the stream. */
export const stream = (info: Telemetry.ProviderInfo, next: StreamFn): StreamFn => (request) =>
  Stream.unwrapScoped(Effect.withFiberRuntime((fiber) => {
    if (!Telemetry.isTracing(fiber) || Telemetry.isCallSpan(fiber.currentSpan)) return Effect.succeed(next(request))
    const content = fiber.getFiberRef(LlmMetrics.captureContent)
    const delivered = new Delivered(request, content)
    return Effect.gen(function*() {
      const span = yield* Effect.makeSpanScoped(Telemetry.callSpanName(request), options)
      Telemetry.markCall(span)
      Telemetry.setRequest(span, request, info, true, content)
      // Added after the span's own finalizer, so it runs first: the span ends with these attributes.
      yield* Effect.addFinalizer((exit) =>
        Effect.sync(() => {
          Telemetry.setExit(span, exit)
          if (Exit.isSuccess(exit)) Telemetry.setOutcome(span, delivered.outcome(), content)
        })
      )
      const observed = Stream.mapChunks(next(request), (chunks) => {
        for (const chunk of chunks) delivered.see(chunk)
        return chunks
      })
      return Stream.provideService(observed, Tracer.ParentSpan, span)
    })
  }))
