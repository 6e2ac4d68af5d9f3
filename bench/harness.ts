/** Small timing helpers shared by the benchmarks: medians of repeated runs, side by side in one process. */

export interface Row {
  readonly name: string
  readonly medianNs: number
  readonly baseline?: string
}

/** Runs `fn` (`ops` operations per run) `runs` times after `warmup` runs; returns the median ns per operation. */
export async function measure(fn: () => Promise<unknown>, ops: number, runs = 7, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn()
  const samples: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc) gc()
    const start = performance.now()
    await fn()
    samples.push(((performance.now() - start) * 1e6) / ops)
  }
  samples.sort((a, b) => a - b)
  return samples[Math.floor(samples.length / 2)]
}

/** Prints rows as a table with each row's ratio to a reference row. */
export function printTable(title: string, rows: ReadonlyArray<Row>, reference: string): void {
  const ref = rows.find((r) => r.name === reference)?.medianNs ?? rows[0].medianNs
  const width = Math.max(...rows.map((r) => r.name.length), 10)
  console.log(`\n${title}`)
  console.log(`${"".padEnd(width)}  ${"median ns/op".padStart(14)}  ${"× " + reference}`)
  for (const r of rows) {
    console.log(`${r.name.padEnd(width)}  ${r.medianNs.toFixed(0).padStart(14)}  ${(r.medianNs / ref).toFixed(2).padStart(8)}`)
  }
}
