/**
 * The table and the JSON lines of `compare.ts`, in the format of `packages/transport-udp/bench/session.ts`:
 * bench | median | same-run baseline | ratio [per rep] | target, or one JSON object per row
 * `{"bench","metric","value","unit","baseline","ratio","target","ratios"}`.
 */

/** One measured comparison: Weft's value and the baseline's, rep by rep. */
export interface Row {
  readonly bench: string
  readonly metric: string
  /** Median of Weft's per-rep values. */
  readonly value: number
  readonly unit: string
  /** Median of the baseline's per-rep values. */
  readonly baseline: number
  readonly baselineName: string
  /** Weft ÷ baseline, per rep. */
  readonly ratios: ReadonlyArray<number>
  /** The median ratio to reach (at least), if the issue sets one. */
  readonly target?: number | undefined
}

/** The median (mean of the two middle values for an even count). */
export const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

/** A row from the per-rep values of Weft and its baseline. */
export const row = (
  spec: Omit<Row, "value" | "baseline" | "ratios">,
  values: ReadonlyArray<number>,
  baselines: ReadonlyArray<number>
): Row => ({
  ...spec,
  value: median(values),
  baseline: median(baselines),
  ratios: values.map((value, i) => value / baselines[i]!)
})

const format = (value: number): string =>
  value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)}k` : value.toFixed(1)

/** Whether the row's median ratio reaches its target. */
export const met = (row: Row): boolean => row.target === undefined || median(row.ratios) >= row.target

/** Prints the rows as a table, or as JSON lines. */
export const print = (rows: ReadonlyArray<Row>, json: boolean): void => {
  if (json) {
    for (const r of rows) {
      const line: Record<string, unknown> = {
        bench: r.bench,
        metric: r.metric,
        value: Number(r.value.toFixed(2)),
        unit: r.unit,
        baseline: Number(r.baseline.toFixed(2)),
        ratio: Number(median(r.ratios).toFixed(3))
      }
      if (r.target !== undefined) line.target = r.target
      line.ratios = r.ratios.map((x) => Number(x.toFixed(3)))
      console.log(JSON.stringify(line))
    }
    return
  }
  const cells = rows.map((r) => [
    r.bench,
    `${format(r.value)} ${r.unit}`,
    `${format(r.baseline)} (${r.baselineName})`,
    `${median(r.ratios).toFixed(2)} [${r.ratios.map((x) => x.toFixed(2)).join(", ")}]`,
    r.target === undefined ? "" : `≥ ${r.target}${met(r) ? " ✓" : " ✗"}`
  ])
  const header = ["bench", "median", "same-run baseline", "ratio [per rep]", "target"]
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`
  console.log(line(header))
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
  for (const c of cells) console.log(line(c))
}
