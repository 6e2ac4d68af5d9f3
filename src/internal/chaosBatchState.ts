/**
 * The files and batches one ChaosServer holds (see chaosBatch for the endpoints), and the batch settings: plain
 * data, as the rest of the server's state.
 */
import { Duration } from "effect"

/** The batch settings (fixed for the life of the server). */
export interface BatchSettings {
  /** How long a batch takes from creation to completion, on the server's clock. */
  readonly completionTime: Duration.Duration
  /** The `custom_id`s answered with an error line (`failStatus`). */
  readonly failCustomIds: ReadonlySet<string>
  readonly failStatus: number
  /** When set, the batch expires at its completion time with only its first `expireAfterItems` lines done. */
  readonly expireAfterItems: number | undefined
}

/** The counters of `GET /_chaos/batches` (and `server.batchStats`). */
export interface BatchStats {
  readonly filesCreated: number
  readonly fileContentsRead: number
  readonly batchesCreated: number
  readonly batchesRetrieved: number
  readonly batchesCancelled: number
}

export interface StoredFile {
  readonly id: string
  readonly filename: string
  readonly purpose: string
  readonly createdAt: number
  readonly content: string
}

export type Status = "in_progress" | "cancelling" | "cancelled" | "completed" | "expired" | "failed"

export interface StoredBatch {
  readonly id: string
  readonly inputFileId: string
  readonly endpoint: string
  readonly completionWindow: string
  readonly metadata: Readonly<Record<string, string>> | null
  readonly createdAt: number
  status: Status
  total: number
  completed: number
  failed: number
  outputFileId: string | undefined
  errorFileId: string | undefined
  finishedAt: number | undefined
  cancellingAt: number | undefined
}

const counts = (): { -readonly [K in keyof BatchStats]: number } => ({
  filesCreated: 0,
  fileContentsRead: 0,
  batchesCreated: 0,
  batchesRetrieved: 0,
  batchesCancelled: 0
})

/** The files and batches of one server. */
export class BatchState {
  readonly files = new Map<string, StoredFile>()
  readonly batches = new Map<string, StoredBatch>()
  counters = counts()
  private next = 0
  constructor(readonly settings: BatchSettings) {}
  id(prefix: string): string {
    return `${prefix}-chaos-${this.next++}`
  }
  stats(): BatchStats {
    return { ...this.counters }
  }
  resetStats(): void {
    this.counters = counts()
  }
}


/** The settings when none are given: a batch completes 1 second after its creation, no line fails. */
export const defaultBatchSettings: BatchSettings = {
  completionTime: Duration.seconds(1),
  failCustomIds: new Set(),
  failStatus: 500,
  expireAfterItems: undefined
}
