/**
 * The mutable state of one ChaosServer: settings, the request counter that drives the fault sequence, and the
 * counters `/_chaos/stats` reports. Node callbacks (a closed connection) update it, so it is plain data.
 */
import type * as Http from "node:http"
import type * as Faults from "./chaosFaults.js"
import { type BatchSettings, BatchState, defaultBatchSettings } from "./chaosBatchState.js"
import { PromptCache } from "./chaosPromptCache.js"
import { QuotaState, type Quotas } from "./chaosQuota.js"

/** The API dialects the server speaks, named after their endpoints. */
export type Dialect = "chat" | "messages" | "responses" | "embeddings"

/**
 * When the server answers with a tool call instead of text: `"named"` when the request forces a tool (a named
 * tool choice, or "required" / "any") or the last user message names an offered tool; `"offered"` whenever tools
 * are offered, unless the conversation just returned a tool result; `"forced"` only when the request forces one.
 */
export type ToolCallMode = "named" | "offered" | "forced"

/** The counters `/_chaos/stats` reports. */
export interface Stats {
  readonly requests: number
  readonly byModel: Readonly<Record<string, number>>
  readonly byDialect: Readonly<Record<string, number>>
  readonly byOutcome: Readonly<Record<string, number>>
  readonly aborted: number
  readonly inFlight: number
}

/** Server settings that are not faults (fixed for the life of the server). */
export interface Settings {
  /** Whether OpenAI answers (chat completions and Responses) report `usage`. */
  readonly usage: boolean
  readonly toolCalls: ToolCallMode
  /** The Batch API's settings (completion time, failing lines, expiry). */
  readonly batch?: BatchSettings | undefined
  /** Per-model requests and tokens a window (see chaosQuota). */
  readonly quotas?: Quotas | undefined
}

/** A response being tracked; `cut` marks a close the server did on purpose (not a client abort). */
export interface Tracker {
  readonly cut: () => void
}

// Keyed by whatever model name a client sends: null-prototype, so "__proto__" or "constructor" count like any name.
const counters = (): Record<string, number> => Object.create(null)

export class ChaosState {
  config: Faults.FaultConfig
  readonly settings: Settings
  /** The prompt prefixes answered so far, for the cached tokens of later requests. */
  readonly promptCache = new PromptCache()
  /** The uploaded files and the batches (`/v1/files`, `/v1/batches`). */
  readonly batch: BatchState
  /** The per-model quotas and their current windows. */
  readonly quota: QuotaState
  private index = 0
  private requests = 0
  private byModel = counters()
  private byDialect = counters()
  private byOutcome = counters()
  private aborted = 0
  private inFlight = 0

  constructor(
    readonly seed: number,
    readonly models: ReadonlyArray<string>,
    readonly words: number,
    config: Faults.FaultConfig,
    settings: Partial<Settings> = {}
  ) {
    this.config = config
    this.settings = { usage: settings.usage ?? true, toolCalls: settings.toolCalls ?? "named" }
    this.batch = new BatchState(settings.batch ?? defaultBatchSettings)
    this.quota = new QuotaState(settings.quotas ?? {})
  }

  /** The next request number: the fault sequence is a function of the seed and this number. */
  nextIndex(): number {
    return this.index++
  }

  record(model: string, outcome: string, dialect: Dialect): void {
    this.requests++
    this.byModel[model] = (this.byModel[model] ?? 0) + 1
    this.byDialect[dialect] = (this.byDialect[dialect] ?? 0) + 1
    this.byOutcome[outcome] = (this.byOutcome[outcome] ?? 0) + 1
  }

  /** Counts a response in flight until its connection closes; a close before the end is a client abort. */
  track(response: Http.ServerResponse): Tracker {
    let cutByServer = false
    this.inFlight++
    response.once("close", () => {
      this.inFlight--
      if (!response.writableEnded && !cutByServer) this.aborted++
    })
    return { cut: () => (cutByServer = true) }
  }

  stats(): Stats {
    return {
      requests: this.requests,
      byModel: { ...this.byModel },
      byDialect: { ...this.byDialect },
      byOutcome: { ...this.byOutcome },
      aborted: this.aborted,
      inFlight: this.inFlight
    }
  }

  resetStats(): void {
    this.batch.resetStats()
    this.requests = 0
    this.byModel = counters()
    this.byDialect = counters()
    this.byOutcome = counters()
    this.aborted = 0
  }
}
