/**
 * Pluggable congestion control for the stream layer. The service hands each connection its own
 * `Controller` (per-connection state); swapping the algorithm for a whole node is one Layer:
 *
 * - `layerNewReno()` (the default): NewReno as RFC 9002 §7 adapts it to packet numbers that are
 *   never reused — slow start, congestion avoidance, and one window reduction per recovery period
 *   (fast recovery: losses of packets sent before the period began do not reduce it again); the
 *   window grows only while the sender fills it (not while flow control or the application limit it).
 * - `layerFixedRate({ bytesPerSecond })`: a constant bit rate for traffic-analysis resistance. One
 *   full-size packet leaves every `mtuBytes / bytesPerSecond` seconds, whether or not there is data:
 *   when there is none a cover packet goes instead, so an observer sees the same rate idle or busy.
 *   Losses do not slow it down (the rate is the budget); retransmissions take ordinary slots.
 *
 * Controllers are plain synchronous objects: the stream sender calls them per packet, with times
 * read from Effect's `Clock`, so they run deterministically under the simulator.
 */
import { Context, Layer } from "effect"

/** One connection's congestion state, driven by its sender. Times are `Clock` milliseconds. */
export interface Controller {
  /** For stats and logs. */
  readonly name: string
  /**
   * When true the sender sends exactly one full-size packet at every `nextDepartureMs` (data, or a
   * cover packet when there is none) and ignores `canSend`.
   */
  readonly constantRate: boolean
  /** Congestion window in bytes (`Infinity` when the controller keeps none). */
  readonly windowBytes: () => number
  /** Whether a new packet may leave with `bytesInFlight` bytes unacknowledged. */
  readonly canSend: (bytesInFlight: number) => boolean
  /** The earliest time the next packet may leave; `-Infinity` when the controller does not pace. */
  readonly nextDepartureMs: () => number
  /** A packet left; `bytesInFlight` includes it (fixed-rate mode: every departure, cover included). */
  readonly onPacketSent: (bytes: number, bytesInFlight: number, nowMs: number) => void
  /** A packet sent at `sentAtMs` was acknowledged. */
  readonly onAck: (bytes: number, sentAtMs: number, nowMs: number) => void
  /** Packets were declared lost; `sentAtMs` is when the latest of them was sent (one congestion event). */
  readonly onLoss: (bytes: number, sentAtMs: number, nowMs: number) => void
  /** The retransmission timeout fired: everything in flight was declared lost. */
  readonly onTimeout: (nowMs: number) => void
}

/** The congestion control service: a factory of per-connection controllers. */
export class CongestionControl extends Context.Tag("@weft/core/CongestionControl")<CongestionControl, {
  readonly name: string
  /** A fresh controller for a connection whose packets are at most `mtuBytes`. */
  readonly make: (mtuBytes: number) => Controller
}>() {}

/** Options of NewReno. */
export interface NewRenoOptions {
  /** Initial window in packets (default 10, RFC 9002 §7.2). */
  readonly initialWindowPackets?: number | undefined
  /** Window never shrinks below this many packets (default 2). */
  readonly minimumWindowPackets?: number | undefined
}

/** A NewReno controller (RFC 9002 §7 / RFC 6582 semantics), exported for unit tests. */
export const newReno = (mtuBytes: number, options: NewRenoOptions = {}): Controller => {
  const minimum = (options.minimumWindowPackets ?? 2) * mtuBytes
  let window = Math.max(minimum, (options.initialWindowPackets ?? 10) * mtuBytes)
  let slowStartThreshold = Infinity
  let recoveryStartMs = -Infinity
  // Growth in congestion avoidance is one packet per window of acknowledged bytes.
  let avoidanceCredit = 0
  // Bytes in flight after the latest send: a window the sender does not fill must not grow (RFC 9002 §7.8).
  let inFlightAtSend = 0
  const windowLimited = (): boolean =>
    window < slowStartThreshold ? inFlightAtSend * 2 >= window : inFlightAtSend + mtuBytes >= window
  const enterRecovery = (nowMs: number): void => {
    recoveryStartMs = nowMs
    slowStartThreshold = Math.max(minimum, Math.floor(window / 2))
    window = slowStartThreshold
    avoidanceCredit = 0
  }
  return {
    name: "newreno",
    constantRate: false,
    windowBytes: () => window,
    canSend: (bytesInFlight) => bytesInFlight < window,
    nextDepartureMs: () => -Infinity,
    onPacketSent: (_bytes, bytesInFlight) => {
      inFlightAtSend = bytesInFlight
    },
    onAck: (bytes, sentAtMs) => {
      if (sentAtMs <= recoveryStartMs || !windowLimited()) return
      if (window < slowStartThreshold) {
        window += bytes
        return
      }
      avoidanceCredit += bytes
      if (avoidanceCredit >= window) {
        avoidanceCredit -= window
        window += mtuBytes
      }
    },
    onLoss: (_bytes, sentAtMs, nowMs) => {
      if (sentAtMs > recoveryStartMs) enterRecovery(nowMs)
    },
    onTimeout: (nowMs) => {
      enterRecovery(nowMs)
      window = minimum
    }
  }
}

/** Options of the fixed-rate mode. */
export interface FixedRateOptions {
  /** Bytes per second on the wire, cover included. The interval is `mtuBytes / bytesPerSecond`. */
  readonly bytesPerSecond: number
}

/**
 * A fixed-rate controller, exported for unit tests. Departure k is at `start + k · interval`; a
 * departure the sender missed (it was busy) is skipped rather than made up, so the rate never bursts.
 */
export const fixedRate = (mtuBytes: number, options: FixedRateOptions): Controller => {
  if (!(options.bytesPerSecond > 0)) throw new Error(`CongestionControl.fixedRate: bytesPerSecond must be > 0`)
  const intervalMs = (mtuBytes / options.bytesPerSecond) * 1000
  let startMs: number | undefined
  let nextSlot = 0
  return {
    name: "fixed-rate",
    constantRate: true,
    windowBytes: () => Infinity,
    canSend: () => true,
    nextDepartureMs: () => startMs === undefined ? -Infinity : startMs + nextSlot * intervalMs,
    onPacketSent: (_bytes, _bytesInFlight, nowMs) => {
      if (startMs === undefined) startMs = nowMs
      // The epsilon keeps a send exactly on slot k from being read as slot k - 1 after rounding.
      nextSlot = Math.floor((nowMs - startMs) / intervalMs + 1e-9) + 1
    },
    onAck: () => {},
    onLoss: () => {},
    onTimeout: () => {}
  }
}

/** NewReno for every connection: the default. */
export const layerNewReno = (options: NewRenoOptions = {}): Layer.Layer<CongestionControl> =>
  Layer.succeed(CongestionControl, { name: "newreno", make: (mtuBytes) => newReno(mtuBytes, options) })

/** A constant bit rate with cover traffic for every connection. */
export const layerFixedRate = (options: FixedRateOptions): Layer.Layer<CongestionControl> => {
  if (!(options.bytesPerSecond > 0)) throw new Error(`CongestionControl.layerFixedRate: bytesPerSecond must be > 0`)
  return Layer.succeed(CongestionControl, { name: "fixed-rate", make: (mtuBytes) => fixedRate(mtuBytes, options) })
}

/** The default congestion control (NewReno). */
export const layer: Layer.Layer<CongestionControl> = layerNewReno()
