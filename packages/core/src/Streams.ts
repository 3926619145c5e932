/**
 * Reliable ordered streams over unreliable paths. A `Connection` to one peer carries many streams;
 * each delivers the frames written to it exactly once and in order, however the paths below lose,
 * duplicate or reorder datagrams. Streams are independent: a loss on one never delays another.
 *
 * - **Packets** (format in `internal/streamsPacket.ts`) have numbers that are never reused, carry
 *   STREAM data by byte offset, selective ACK ranges, window updates; each fits one path datagram.
 * - **Reliability**: ACKs every second ack-eliciting packet, on any gap, or within `ackDelayMax` (the
 *   datagrams a path hands over in one turn are acknowledged together, once the turn is through);
 *   loss by SACK evidence (a packet 3 below the largest acknowledged, or 9/8 RTT older than it, as in
 *   RFC 9002) triggers a fast retransmit; otherwise the RFC 6298 timeout (SRTT, RTTVAR, exponential
 *   backoff within [`retransmitTimeoutMin`, `retransmitTimeoutMax`]) retransmits everything outstanding.
 * - **Flow control**: each receiver advertises a window per stream and per connection, moved by what
 *   the application consumes; the sender never exceeds it, so every buffer on both sides is bounded.
 *   `send` suspends while the stream's or connection's send buffer is full.
 * - **Priority**: bytes up to the end of a `priority: "control"` frame are sent before other streams'
 *   bulk data (within a stream, bytes stay in order: give control messages their own stream).
 * - **Paths**: data leaves on `data`; ACKs and window updates on `acks` (the return path, default
 *   `data`); datagrams are read from every stream in `inbound`.
 * - **Congestion control** comes from the `CongestionControl` service, one controller per connection.
 *
 * Both ends must run with the same stream limits (windows are not negotiated). The per-packet work is
 * plain code over buffers, run on the turn of the `send` or the datagram that made it due (`makePump`);
 * one sender fiber per connection keeps the timers, and one receiver fiber holds the inbound paths.
 */
import type { Scope } from "effect"
import { Chunk, Deferred, Duration, Effect, Exit, Fiber, Option, Stream } from "effect"
import { CongestionControl } from "./CongestionControl.js"
import { type Config, Machine } from "./internal/streamsConnection.js"
import * as Signal from "./internal/signal.js"
import { mtuBytesMin, streamHeaderBytes } from "./internal/streamsPacket.js"
import type { Values } from "./Limits.js"
import { Limits } from "./Limits.js"
import type { NodeId } from "./NodeId.js"
import type { Path, Receive } from "./Path.js"
import { LinkError } from "./WeftError.js"

/** Options of `make`. */
export interface Options {
  /** Where data packets go. */
  readonly data: Path
  /** Where ACKs and window updates go (the return path); default `data`. */
  readonly acks?: Path | undefined
  /** Where datagrams come from: every path the peer may use; default the `receive` of `data` and `acks`. */
  readonly inbound?: ReadonlyArray<Receive> | undefined
  /**
   * Runs once every inbound path has ended and the connection closed, in the connection's receiver fiber
   * (e.g. closing the scope the connection lives in, so a closed session leaves nothing behind without
   * a fiber waiting for it).
   */
  readonly onEnd?: Effect.Effect<void> | undefined
}

/** Options of one `send`. */
export interface SendOptions {
  /** `"control"` frames go ahead of queued bulk data of other streams. Default `"bulk"`. */
  readonly priority?: "control" | "bulk" | undefined
}

/** One delivered frame. */
export interface Frame {
  readonly stream: number
  readonly frame: Uint8Array
}

/** What a connection counts and holds. */
export interface Stats {
  readonly packetsSent: number
  readonly packetsReceived: number
  /** Packets declared lost (by ACK evidence or timeout); their contents were queued again. */
  readonly packetsLost: number
  /** Of those, packets acknowledged after all (reordered, not lost): each widens the loss thresholds. */
  readonly packetsLostSpurious: number
  /** Stream bytes sent again. */
  readonly bytesRetransmitted: number
  readonly retransmitTimeouts: number
  /** Packets sent carrying an ACK. */
  readonly acksSent: number
  readonly coverSent: number
  /** Cover packets received and discarded. */
  readonly coverReceived: number
  /** Datagrams that did not decode, or acknowledged a packet never sent. */
  readonly packetsMalformed: number
  /** Packets dropped unacknowledged: stream id out of range, or too many out-of-order segments. */
  readonly packetsRejected: number
  /** Packets dropped unacknowledged because they exceeded the advertised window. */
  readonly flowControlViolations: number
  /** Ack-eliciting packets received again (the medium duplicated them). */
  readonly duplicatePackets: number
  /** Stream bytes received again and discarded. */
  readonly duplicateBytes: number
  /** Streams whose peer sent a frame length above `streamFrameBytesMax`. */
  readonly streamsBroken: number
  readonly framesSent: number
  readonly framesReceived: number
  readonly smoothedRttMs: number
  readonly rttVariationMs: number
  /** The current retransmission timeout, backoff included. */
  readonly retransmitTimeoutMs: number
  readonly congestionWindowBytes: number
  readonly bytesInFlight: number
  readonly packetsInFlight: number
  /** Bytes written and not yet acknowledged (at most `connectionSendBufferBytes`). */
  readonly sendBufferedBytes: number
  /** Bytes received and not yet taken by the application (at most `connectionReceiveWindowBytes`). */
  readonly receiveBufferedBytes: number
  /** Stream states held (send and receive halves). */
  readonly streamsOpen: number
}

/** A reliable connection to one peer. */
export interface Connection {
  readonly peer: NodeId
  /**
   * Queues one frame on `stream` (an integer in [0, `streamsPerConnectionMax`)); suspends while the
   * send buffer is full. Fails with `LinkError("FrameTooLarge")` above `streamFrameBytesMax`, and with
   * the connection's error once it is closed. Frames of one stream go in the order `send` admits
   * them: sequential sends keep their order; concurrent ones on one stream are ordered by admission.
   */
  readonly send: (stream: number, frame: Uint8Array, options?: SendOptions) => Effect.Effect<void, LinkError>
  /** Every frame the peer sent, exactly once, in order within its stream. One consumer; ends at close. */
  readonly frames: Stream.Stream<Frame>
  /**
   * The same frames handed to `onFrame` as plain code, in one loop with no Stream stages in between
   * (the message layer reads this way); completes at close. One consumer: `frames` or `receive`.
   */
  readonly receive: (onFrame: (frame: Frame) => void) => Effect.Effect<void>
  /** Stops the connection (idempotent): pending sends fail, `frames` ends. Unacknowledged data is abandoned. */
  readonly close: Effect.Effect<void>
  readonly stats: Effect.Effect<Stats>
}

/** A wake-up that is never lost: `wait(seen)` returns at once if `notify` ran since `seen()`. */

const millis = (duration: Duration.Duration): number => Duration.toMillis(duration)

const configOf = (limits: Values, data: Path, acks: Path): Config => ({
  streamsMax: limits.streamsPerConnectionMax,
  frameBytesMax: limits.streamFrameBytesMax,
  streamSendBufferBytes: limits.streamSendBufferBytes,
  connectionSendBufferBytes: limits.connectionSendBufferBytes,
  streamWindowBytes: limits.streamReceiveWindowBytes,
  connectionWindowBytes: limits.connectionReceiveWindowBytes,
  reorderSegmentsMax: limits.streamReorderSegmentsMax,
  packetsInFlightMax: limits.packetsInFlightMax,
  ackRangesMax: limits.ackRangesMax,
  ackDelayMaxMs: millis(limits.ackDelayMax),
  rtoInitialMs: millis(limits.retransmitTimeoutInitial),
  rtoMinMs: millis(limits.retransmitTimeoutMin),
  rtoMaxMs: millis(limits.retransmitTimeoutMax),
  dataMtuBytes: data.mtuBytes,
  acksMtuBytes: acks.mtuBytes,
  separateAckPath: acks !== data
})

/** Configurations that could deadlock or overflow the wire format are defects of the build. */
const checkConfig = (config: Config, data: Path, acks: Path): string | undefined => {
  const framed = config.frameBytesMax + 4
  if (data.peer !== acks.peer) return "data and acks paths lead to different peers"
  if (Math.min(config.dataMtuBytes, config.acksMtuBytes) < mtuBytesMin) return `mtuBytes below ${mtuBytesMin}`
  if (Math.max(config.dataMtuBytes, config.acksMtuBytes) > 0xffff) return "mtuBytes above 65535"
  if (config.streamsMax < 1 || config.streamsMax > 0x10000) return "streamsPerConnectionMax not in [1, 65536]"
  if (config.streamWindowBytes < framed) return "streamReceiveWindowBytes below streamFrameBytesMax + 4"
  if (config.connectionWindowBytes < config.streamWindowBytes) return "connectionReceiveWindowBytes below the stream window"
  if (config.streamSendBufferBytes < framed) return "streamSendBufferBytes below streamFrameBytesMax + 4"
  if (config.connectionSendBufferBytes < config.streamSendBufferBytes) return "connectionSendBufferBytes below the stream buffer"
  if (config.dataMtuBytes <= streamHeaderBytes) return "no room for stream data"
  return undefined
}

interface Loops {
  readonly machine: Machine
  readonly data: Path
  readonly acks: Path
  readonly senderWake: Signal.Signal
  readonly closed: Deferred.Deferred<void>
  readonly close: (error: LinkError) => Effect.Effect<void>
  /** `close` as plain code (from the per-cell path). */
  readonly closeNow: (error: LinkError) => void
  /** The sender fiber's timer (read by `pump` to tell whether the fiber must re-arm it). */
  readonly alarm: Alarm
  /** Sends what is due now as plain code (see `makePump`). */
  pump: () => void
  /** `pump` once the current batch of inbound datagrams is through (one ACK for the batch, not one per two). */
  pumpSoon: () => void
  /** Hands delivered frames to the `receive` callback, if there is one (see `makeDeliver`). */
  deliver: () => void
}

/**
 * The sender's timer: one sleeping fiber armed for the machine's next deadline, replaced only when a
 * deadline comes earlier than the one it sleeps for (racing a sleep on every iteration would fork two
 * fibers per wake-up). Firing early is harmless: the sender polls, finds nothing due and re-arms.
 */
interface Alarm {
  atMs: number
  fiber: Fiber.RuntimeFiber<void> | undefined
}

const armAlarm = (alarm: Alarm, wake: Signal.Signal, atMs: number, nowMs: number): Effect.Effect<void> => {
  if (atMs >= alarm.atMs) return Effect.void
  const previous = alarm.fiber
  alarm.atMs = atMs
  const ring = Effect.sync(() => {
    alarm.atMs = Infinity
    alarm.fiber = undefined
    wake.notify()
  })
  return Effect.zipRight(
    previous === undefined ? Effect.void : Fiber.interruptFork(previous),
    Effect.map(Effect.fork(Effect.zipRight(Effect.sleep(Duration.millis(atMs - nowMs)), ring)), (fiber) => {
      alarm.fiber = fiber
    })
  )
}

/**
 * Sends, as plain code on the caller's turn, what the machine allows now: the fast path of every `send`
 * and every inbound datagram when both paths send without waiting. The sender fiber is woken only for
 * what plain code cannot do: arm an earlier timer, send on a path that waits, or go on after a full
 * burst (so one caller never sends without bound). Re-entry (a path that delivers synchronously) only
 * marks another round for the outer call.
 */
const makePump = (loops: Loops, now: () => number) => {
  const { acks, alarm, data, machine, senderWake } = loops
  const inline = data.unsafeSend !== undefined && acks.unsafeSend !== undefined
  let pumping = false
  let again = false
  const round = (): void => {
    const nowMs = now()
    for (const packet of machine.poll(nowMs)) {
      const error = (packet.path === 0 ? data : acks).unsafeSend!(packet.bytes)
      if (error !== undefined) return loops.closeNow(error)
    }
    if (!machine.closed && machine.nextWakeMs(nowMs) < alarm.atMs) senderWake.notify()
  }
  const pump = (): void => {
    if (!inline) return senderWake.notify()
    if (pumping) {
      again = true
      return
    }
    pumping = true
    try {
      do {
        again = false
        if (!machine.closed) round()
      } while (again)
    } finally {
      pumping = false
    }
  }
  let scheduled = false
  const scheduledRun = () => {
    scheduled = false
    pump()
  }
  const pumpSoon = (): void => {
    if (scheduled) return
    scheduled = true
    // A microtask runs after the link's synchronous loop over the chunk of cells it was handed.
    queueMicrotask(scheduledRun)
  }
  return { pump, pumpSoon }
}

/** The one sender loop: timers, then every packet allowed now, then sleep until the next reason to act. */
const senderLoop = (loops: Loops): Effect.Effect<void> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    const { acks, alarm, data, machine, senderWake } = loops
    while (!machine.closed) {
      const seen = senderWake.seen()
      const nowMs = clock.unsafeCurrentTimeMillis()
      const outgoing = machine.poll(nowMs)
      for (const packet of outgoing) {
        const path = packet.path === 0 ? data : acks
        // Plain code where the path sends without waiting (a raw link session): no Effect per packet.
        const error = path.unsafeSend === undefined
          ? yield* Effect.match(path.send(packet.bytes), { onFailure: (e): LinkError | undefined => e, onSuccess: () => undefined })
          : path.unsafeSend(packet.bytes)
        if (error !== undefined) return yield* loops.close(error)
      }
      if (machine.closed) return
      const wakeMs = machine.nextWakeMs(nowMs)
      if (wakeMs <= nowMs && outgoing.length > 0) {
        yield* Effect.yieldNow()
        continue
      }
      // A poll that sent nothing must not spin at the same instant, whatever the machine asks for.
      if (wakeMs !== Infinity) yield* armAlarm(alarm, senderWake, Math.max(wakeMs, nowMs + 1), nowMs)
      yield* senderWake.wait(seen)
    }
  })

/**
 * The receiver: every datagram from every inbound path goes through the machine as plain code, on the
 * path's own per-cell callback. A defect in the machine closes this connection, not the link below.
 */
const receiverLoop = (loops: Loops, inbound: ReadonlyArray<Receive>, onEnd: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.gen(function*() {
    const clock = yield* Effect.clock
    let defect: unknown = undefined
    const onDatagram = (datagram: Uint8Array): void => {
      if (loops.machine.closed) return
      try {
        loops.machine.onDatagram(datagram, clock.unsafeCurrentTimeMillis())
        loops.deliver()
      } catch (error) {
        defect = error
        loops.closeNow(new LinkError({ reason: "Closed", detail: "defect in the stream layer or a frame callback" }))
        return
      }
      loops.pumpSoon()
    }
    // Runs until every path has closed; closing the connection interrupts it (no fiber races it per path).
    yield* inbound.length === 1
      ? inbound[0]!(onDatagram)
      : Effect.forEach(inbound, (receive) => receive(onDatagram), { concurrency: "unbounded", discard: true })
    if (defect !== undefined) return yield* Effect.die(defect)
    yield* loops.close(new LinkError({ reason: "Closed", detail: "every inbound path ended" }))
    yield* onEnd
  })

const makeFrames = (loops: Loops, framesWake: Signal.Signal): Stream.Stream<Frame> => {
  const pull: Effect.Effect<Chunk.Chunk<Frame>, Option.Option<never>> = Effect.suspend(() => {
    const seen = framesWake.seen()
    const frames = loops.machine.takeDelivered()
    if (frames.length > 0) {
      // Taking frames may have opened the windows: there may be updates to send.
      loops.pump()
      return Effect.succeed(Chunk.unsafeFromArray(frames))
    }
    if (loops.machine.closed) return Effect.fail(Option.none())
    return Effect.zipRight(framesWake.wait(seen), pull)
  })
  return Stream.repeatEffectChunkOption(pull)
}

/** The `receive` callback, while one runs; `delivering` guards against a callback that re-enters. */
interface Reader {
  onFrame: ((frame: Frame) => void) | undefined
  delivering: boolean
}

/**
 * Hands every delivered frame to the reader as plain code, on the turn of the datagram that completed
 * it (no fiber wake-up per frame). Without a reader, frames wait in the machine, within its windows.
 */
const makeDeliver = (machine: Machine, reader: Reader) => (): void => {
  const onFrame = reader.onFrame
  if (onFrame === undefined || reader.delivering) return
  reader.delivering = true
  try {
    for (let frames = machine.takeDelivered(); frames.length > 0; frames = machine.takeDelivered()) {
      for (const frame of frames) onFrame(frame)
    }
  } finally {
    reader.delivering = false
  }
}

const makeReceive = (loops: Loops, reader: Reader) => (onFrame: (frame: Frame) => void): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (reader.onFrame !== undefined) return Effect.dieMessage("Streams.receive: the connection already has a reader")
    reader.onFrame = onFrame
    // Frames that arrived before the reader, then window updates for the room they leave.
    loops.deliver()
    loops.pump()
    return Effect.ensuring(
      Deferred.await(loops.closed),
      Effect.sync(() => {
        reader.onFrame = undefined
      })
    )
  })

const makeSend = (loops: Loops, spaceWake: Signal.Signal, config: Config) =>
(stream: number, frame: Uint8Array, options?: SendOptions): Effect.Effect<void, LinkError> => {
  if (!Number.isInteger(stream) || stream < 0 || stream >= config.streamsMax) {
    return Effect.dieMessage(`Streams: stream ${stream} is not in [0, ${config.streamsMax})`)
  }
  if (frame.length > config.frameBytesMax) {
    return Effect.fail(new LinkError({ reason: "FrameTooLarge", detail: `${frame.length} > ${config.frameBytesMax}` }))
  }
  const control = options?.priority === "control"
  const machine = loops.machine
  const attempt: Effect.Effect<void, LinkError> = Effect.suspend(() => {
    if (machine.closed) return Effect.fail(machine.error ?? new LinkError({ reason: "Closed" }))
    const seen = spaceWake.seen()
    if (machine.write(stream, frame, control)) {
      loops.pump()
      return Effect.void
    }
    return Effect.zipRight(spaceWake.wait(seen), attempt)
  })
  return attempt
}

/**
 * Opens a connection over the given paths for as long as the scope lives (closing the scope closes
 * it). Bounds come from `Limits` (streams section); the controller from `CongestionControl`.
 */
export const make = (options: Options): Effect.Effect<Connection, never, Scope.Scope | Limits | CongestionControl> =>
  Effect.gen(function*() {
    const limits = yield* Limits
    const congestion = yield* CongestionControl
    const data = options.data
    const acks = options.acks ?? data
    const config = configOf(limits, data, acks)
    const problem = checkConfig(config, data, acks)
    if (problem !== undefined) return yield* Effect.dieMessage(`Streams.make: ${problem}`)
    const senderWake = Signal.make()
    const spaceWake = Signal.make()
    const framesWake = Signal.make()
    const machine = new Machine(config, congestion.make(data.mtuBytes), {
      onSpace: spaceWake.notify,
      onFrames: framesWake.notify
    })
    const closed = yield* Deferred.make<void>()
    const closeNow = (error: LinkError): void => {
      if (machine.closed) return
      machine.close(error)
      senderWake.notify()
      spaceWake.notify()
      framesWake.notify()
      Deferred.unsafeDone(closed, Exit.void)
    }
    const close = (error: LinkError) => Effect.sync(() => closeNow(error))
    const reader: Reader = { onFrame: undefined, delivering: false }
    const loops: Loops = {
      machine, data, acks, senderWake, closed, close, closeNow,
      alarm: { atMs: Infinity, fiber: undefined },
      pump: () => {},
      pumpSoon: () => {},
      deliver: makeDeliver(machine, reader)
    }
    const clock = yield* Effect.clock
    Object.assign(loops, makePump(loops, () => clock.unsafeCurrentTimeMillis()))
    const inbound = options.inbound ?? (acks === data ? [data.receive] : [data.receive, acks.receive])
    const sender = yield* Effect.forkScoped(senderLoop(loops))
    const receiver = yield* Effect.forkScoped(receiverLoop(loops, inbound, options.onEnd ?? Effect.void))
    const closeAll = Effect.zipRight(
      close(new LinkError({ reason: "Closed", detail: "connection closed" })),
      Effect.zipRight(Fiber.interrupt(sender), Fiber.interrupt(receiver))
    )
    yield* Effect.addFinalizer(() => closeAll)
    return {
      peer: data.peer,
      send: makeSend(loops, spaceWake, config),
      frames: makeFrames(loops, framesWake),
      receive: makeReceive(loops, reader),
      close: closeAll,
      stats: Effect.sync(() => machine.stats())
    } satisfies Connection
  })
