/**
 * What `weft dev` prints: text for people, or (`--json`) one JSON object per line for scripts:
 * a `node` line per node on start, a `status` line per running node per tick, an `exited` line when
 * a node's process ends on its own, and a final `stopped` line. Nothing else goes to stdout in JSON
 * mode; logs go to stderr.
 */
import { Console, Effect } from "effect"
import type { Control } from "./internal/core.js"
import * as Json from "./Json.js"

/** One node's status at a moment, with its sent-message rate since the previous tick. */
export interface Sample {
  readonly status: Control.Status
  readonly messagesPerSecond: number
}

/** A node whose process ended while the network was running. */
export interface Exited {
  readonly index: number
  readonly id: string
  readonly pid: number
  readonly code: number | null
  readonly signal: string | null
}

/** Why the network stopped. */
export type StopReason = "duration" | "interrupted" | "error"

/** Where a dev run reports to. */
export interface Report {
  readonly started: (dataDir: string, samples: ReadonlyArray<Sample>, t: number) => Effect.Effect<void>
  /** One sample per node, none for a node that is gone or did not answer. */
  readonly tick: (samples: ReadonlyArray<Sample | undefined>, t: number) => Effect.Effect<void>
  readonly exited: (exited: Exited, t: number) => Effect.Effect<void>
  readonly stopped: (reason: StopReason, nodes: number, t: number) => Effect.Effect<void>
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits))

const nodeLine = (event: "node" | "status", sample: Sample, t: number): string =>
  Json.line({
    event,
    t: round(t, 3),
    id: sample.status.id,
    pid: sample.status.pid,
    control: sample.status.control,
    transports: sample.status.transports.map(({ address, kind }) => ({ kind, address })),
    peers: sample.status.peers.map((peer) => peer.id),
    messagesPerSecond: round(sample.messagesPerSecond, 2),
    messages: sample.status.messages
  })

/** One JSON object per line. */
export const json: Report = {
  started: (_dataDir, samples, t) => Effect.forEach(samples, (sample) => Console.log(nodeLine("node", sample, t)), { discard: true }),
  tick: (samples, t) =>
    Effect.forEach(samples, (sample) => (sample === undefined ? Effect.void : Console.log(nodeLine("status", sample, t))), { discard: true }),
  exited: (exited, t) => Console.log(Json.line({ event: "exited", t: round(t, 3), ...exited })),
  stopped: (reason, nodes, t) => Console.log(Json.line({ event: "stopped", t: round(t, 3), reason, nodes }))
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`

const total = (samples: ReadonlyArray<Sample | undefined>): number =>
  samples.reduce((sum, sample) => sum + (sample?.messagesPerSecond ?? 0), 0)

const howItEnded = (exited: Exited): string =>
  exited.signal !== null ? `was killed by ${exited.signal}` : `exited with code ${exited.code}`

/** Text for a terminal. */
export const human: Report = {
  started: (dataDir, samples) =>
    Console.log(
      [
        `weft dev: ${plural(samples.length, "node")}, each in its own process, over UDP; data in ${dataDir}`,
        ...samples.map(({ status }, index) =>
          `  node ${index}  ${status.id}  ${status.transports.map((t) => t.address).join(",")}  control ${status.control ?? "(none)"}`
        ),
        `Try: npm run weft -- node status --node ${samples[0]?.status.control ?? dataDir}`,
        "Ctrl-C stops the network."
      ].join("\n")
    ),
  tick: (samples, t) =>
    Console.log(
      `[${t.toFixed(0).padStart(5)}s] peers ${samples.map((s) => (s === undefined ? "-" : s.status.peers.length)).join("/")}  ` +
      `messages/s ${total(samples).toFixed(1)}`
    ),
  exited: (exited) =>
    Console.log(`weft dev: node ${exited.index} (pid ${exited.pid}) ${howItEnded(exited)}; the other nodes keep running`),
  stopped: (reason, nodes) =>
    reason === "error" ? Effect.void : Console.log(`weft dev: stopped ${plural(nodes, "node")} (${reason === "duration" ? "time is up" : "interrupted"})`)
}
