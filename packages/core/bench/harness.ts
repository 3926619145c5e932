/**
 * A small benchmark harness: each case measures operations per second against a baseline measured in the
 * same run, interleaved rep by rep (these machines are noisy), and reports medians and the median of the
 * per-rep ratios. `--json` prints one object per line: {"bench","metric","value","unit","baseline","ratio","target"}.
 */
import { Effect } from "effect"

/** One measured subject: runs `ops` operations and returns when done. */
export interface Subject {
  readonly name: string
  readonly run: (ops: number) => Effect.Effect<void, unknown>
}

/** A benchmark case: the subject against its same-run baseline. */
export interface Case {
  readonly bench: string
  readonly metric: string
  readonly unit: string
  readonly ops: number
  readonly subject: Subject
  readonly baseline?: Subject | undefined
  /** The ratio the subject should reach, when there is one. */
  readonly target?: number | undefined
}

/** The result of a case. */
export interface Result {
  readonly bench: string
  readonly metric: string
  readonly value: number
  readonly unit: string
  readonly baseline?: number | undefined
  readonly baselineName?: string | undefined
  readonly ratio?: number | undefined
  readonly target?: number | undefined
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

const opsPerSecond = (subject: Subject, ops: number): Effect.Effect<number, unknown> =>
  Effect.gen(function*() {
    const start = performance.now()
    yield* subject.run(ops)
    return ops / ((performance.now() - start) / 1000)
  })

/** Runs a case: a warm-up, then `reps` interleaved reps of subject and baseline. */
export const runCase = (spec: Case, reps: number): Effect.Effect<Result, unknown> =>
  Effect.gen(function*() {
    const warmup = Math.max(1, Math.floor(spec.ops / 5))
    yield* spec.subject.run(warmup)
    if (spec.baseline) yield* spec.baseline.run(warmup)
    const values: Array<number> = []
    const baselines: Array<number> = []
    const ratios: Array<number> = []
    for (let rep = 0; rep < reps; rep++) {
      const value = yield* opsPerSecond(spec.subject, spec.ops)
      values.push(value)
      if (spec.baseline) {
        const base = yield* opsPerSecond(spec.baseline, spec.ops)
        baselines.push(base)
        ratios.push(value / base)
      }
    }
    return {
      bench: spec.bench,
      metric: spec.metric,
      value: median(values),
      unit: spec.unit,
      baseline: spec.baseline ? median(baselines) : undefined,
      baselineName: spec.baseline?.name,
      ratio: spec.baseline ? median(ratios) : undefined,
      target: spec.target
    }
  })

const format = (value: number): string =>
  value >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : value >= 1e3 ? `${(value / 1e3).toFixed(1)}k` : value.toFixed(1)

/** Prints results as a table, or as JSON lines. */
export const report = (results: ReadonlyArray<Result>, json: boolean): void => {
  if (json) {
    for (const r of results) {
      const row: Record<string, unknown> = { bench: r.bench, metric: r.metric, value: Math.round(r.value), unit: r.unit }
      if (r.baseline !== undefined) row.baseline = Math.round(r.baseline)
      if (r.ratio !== undefined) row.ratio = Number(r.ratio.toFixed(3))
      if (r.target !== undefined) row.target = r.target
      console.log(JSON.stringify(row))
    }
    return
  }
  const rows = results.map((r) => [
    r.bench,
    `${format(r.value)} ${r.unit}`,
    r.baseline === undefined ? "" : `${format(r.baseline)} (${r.baselineName})`,
    r.ratio === undefined ? "" : r.ratio.toFixed(2),
    r.target === undefined ? "" : `≥ ${r.target}${r.ratio !== undefined && r.ratio >= r.target ? " ✓" : " ✗"}`
  ])
  const header = ["bench", "median", "same-run baseline", "ratio", "target"]
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`
  console.log(line(header))
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`)
  for (const row of rows) console.log(line(row))
}

/** The command-line options every bench script takes. */
export interface Options {
  readonly json: boolean
  readonly reps: number
  readonly quick: boolean
  /** Runs only the cases whose name contains this text (for profiling one path). */
  readonly only: string | undefined
}

/** Parses `[--json] [--reps N] [--quick] [--only TEXT]`; an unknown or malformed option throws with `usage`. */
export const parseOptions = (args: ReadonlyArray<string>, usage: string): Options => {
  let json = false
  let quick = false
  let reps = 5
  let only: string | undefined
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (arg === "--json") json = true
    else if (arg === "--quick") quick = true
    else if (arg === "--reps") {
      reps = Number(args[++i])
      if (!Number.isSafeInteger(reps) || reps < 1) throw new Error(`--reps needs a positive integer\n${usage}`)
    } else if (arg === "--only") {
      only = args[++i]
      if (only === undefined) throw new Error(`--only needs a text\n${usage}`)
    } else throw new Error(`unknown option ${arg}\n${usage}`)
  }
  return { json, reps, quick, only }
}
