/** Small timing helpers shared by the benchmarks: medians of repeated runs, side by side in one process. */

export interface Row {
  readonly name: string
  readonly medianNs: number
  /** The fastest and slowest run, ns per operation. */
  readonly minNs?: number
  readonly maxNs?: number
  readonly baseline?: string
}

export interface Measured {
  readonly medianNs: number
  readonly minNs: number
  readonly maxNs: number
}

/**
 * Runs `fn` (`ops` operations per run) `runs` times after `warmup` runs; returns the median ns per operation and the
 * spread. `prepare`, when given, runs before each run outside the timed region (fresh inputs for a run).
 */
export async function measureSpread(
  fn: () => Promise<unknown>,
  ops: number,
  runs = 7,
  warmup = 2,
  prepare?: () => void
): Promise<Measured> {
  for (let i = 0; i < warmup; i++) {
    prepare?.()
    await fn()
  }
  const samples: Array<number> = []
  for (let i = 0; i < runs; i++) {
    prepare?.()
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc) gc()
    const start = performance.now()
    await fn()
    samples.push(((performance.now() - start) * 1e6) / ops)
  }
  samples.sort((a, b) => a - b)
  return { medianNs: samples[Math.floor(samples.length / 2)], minNs: samples[0], maxNs: samples[samples.length - 1] }
}

/** Runs `fn` (`ops` operations per run) `runs` times after `warmup` runs; returns the median ns per operation. */
export async function measure(fn: () => Promise<unknown>, ops: number, runs = 7, warmup = 2): Promise<number> {
  return (await measureSpread(fn, ops, runs, warmup)).medianNs
}

/** Prints rows as a table with each row's ratio to a reference row (and the spread of the runs when measured). */
export function printTable(title: string, rows: ReadonlyArray<Row>, reference: string): void {
  const ref = rows.find((r) => r.name === reference)?.medianNs ?? rows[0].medianNs
  const width = Math.max(...rows.map((r) => r.name.length), 10)
  console.log(`\n${title}`)
  console.log(`${"".padEnd(width)}  ${"median ns/op".padStart(14)}  ${"runs min–max".padStart(17)}  ${"× " + reference}`)
  for (const r of rows) {
    const spread = r.minNs === undefined || r.maxNs === undefined ? "" : `${r.minNs.toFixed(0)}–${r.maxNs.toFixed(0)}`
    console.log(
      `${r.name.padEnd(width)}  ${r.medianNs.toFixed(0).padStart(14)}  ${spread.padStart(17)}  ${(r.medianNs / ref).toFixed(2).padStart(8)}`
    )
  }
}
