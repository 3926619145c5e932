/**
 * A hand-written SVG chart of delivery-latency CDFs, one line per strategy, from 1 ms histograms.
 */

/** One strategy's latency histogram (1 ms buckets). */
export interface Series {
  readonly name: string
  readonly histogram: ArrayLike<number>
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
const WIDTH = 720
const HEIGHT = 420
const LEFT = 60
const RIGHT = 20
const TOP = 30
const BOTTOM = 50

/** The SVG document. The x axis ends at the largest p99.9 of the series. */
export const latencyCdf = (series: ReadonlyArray<Series>): string => {
  const totals = series.map((s) => sum(s.histogram))
  const maxMs = Math.max(100, ...series.map((s, i) => quantile(s.histogram, totals[i]!, 0.999)))
  const plotWidth = WIDTH - LEFT - RIGHT
  const plotHeight = HEIGHT - TOP - BOTTOM
  const x = (ms: number) => LEFT + (ms / maxMs) * plotWidth
  const y = (fraction: number) => TOP + (1 - fraction) * plotHeight
  const parts: Array<string> = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="18" text-anchor="middle" font-size="14">Delivery latency CDF</text>`
  ]
  for (let i = 0; i <= 10; i++) {
    const fraction = i / 10
    parts.push(`<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${y(fraction)}" y2="${y(fraction)}" stroke="#eee"/>`)
    parts.push(`<text x="${LEFT - 6}" y="${y(fraction) + 4}" text-anchor="end">${fraction.toFixed(1)}</text>`)
    const ms = Math.round((maxMs * i) / 10)
    parts.push(`<text x="${x(ms)}" y="${HEIGHT - BOTTOM + 16}" text-anchor="middle">${ms}</text>`)
  }
  parts.push(`<text x="${WIDTH / 2}" y="${HEIGHT - 12}" text-anchor="middle">latency (ms)</text>`)
  parts.push(`<rect x="${LEFT}" y="${TOP}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`)
  series.forEach((s, index) => {
    const color = COLORS[index % COLORS.length]!
    const points: Array<string> = []
    let seen = 0
    const step = Math.max(1, Math.floor(maxMs / 400))
    for (let ms = 0; ms <= maxMs && ms < s.histogram.length; ms++) {
      seen += s.histogram[ms]!
      if (ms % step === 0) points.push(`${x(ms).toFixed(1)},${y(totals[index]! === 0 ? 0 : seen / totals[index]!).toFixed(1)}`)
    }
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(" ")}"/>`)
    const legendY = TOP + 16 + index * 16
    parts.push(`<line x1="${WIDTH - RIGHT - 120}" x2="${WIDTH - RIGHT - 100}" y1="${legendY}" y2="${legendY}" stroke="${color}" stroke-width="2"/>`)
    parts.push(`<text x="${WIDTH - RIGHT - 95}" y="${legendY + 4}">${escape(s.name)}</text>`)
  })
  parts.push("</svg>")
  return parts.join("\n") + "\n"
}

const sum = (histogram: ArrayLike<number>): number => {
  let total = 0
  for (let i = 0; i < histogram.length; i++) total += histogram[i]!
  return total
}

const quantile = (histogram: ArrayLike<number>, total: number, q: number): number => {
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!
    if (seen >= q * total) return i
  }
  return histogram.length - 1
}

const escape = (text: string): string => text.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`)
