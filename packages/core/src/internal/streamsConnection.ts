/**
 * The state machine of one stream connection, both directions: plain synchronous code over buffers,
 * driven by `Streams.ts` (one sender loop calls `poll`, one receiver loop calls `onDatagram`).
 * Nothing here reads a clock or touches a fiber; times come in as arguments.
 *
 * Sending: `poll` runs the timers (time-threshold loss, retransmission timeout), then builds every
 * packet the congestion controller, flow control and `packetsInFlightMax` allow. Each ack-eliciting
 * packet is remembered with the items it carried (stream ranges, window updates); an ACK retires
 * them, a loss queues them again, to leave in a packet with a new number.
 *
 * Receiving: a datagram is decoded and checked whole (ACKed packet numbers, stream ids, windows,
 * reorder bounds) before anything is applied, so a packet is either applied and acknowledged, or
 * dropped, counted and left for the peer to retransmit.
 */
import type { Controller } from "../CongestionControl.js"
import type { Frame, Stats } from "../Streams.js"
import type { LinkError } from "../WeftError.js"
import * as Packet from "./streamsPacket.js"
import { RangeSet } from "./streamsRanges.js"
import { ReceiveStream } from "./streamsReceive.js"
import { RttEstimator } from "./streamsRtt.js"
import { SendStream } from "./streamsSend.js"

/** The bounds and path facts a machine works with. */
export interface Config {
  readonly streamsMax: number
  readonly frameBytesMax: number
  readonly streamSendBufferBytes: number
  readonly connectionSendBufferBytes: number
  readonly streamWindowBytes: number
  readonly connectionWindowBytes: number
  readonly reorderSegmentsMax: number
  readonly packetsInFlightMax: number
  readonly ackRangesMax: number
  readonly ackDelayMaxMs: number
  readonly rtoInitialMs: number
  readonly rtoMinMs: number
  readonly rtoMaxMs: number
  readonly dataMtuBytes: number
  readonly acksMtuBytes: number
  readonly separateAckPath: boolean
}

/** Notifications to the Effect side (plain callbacks: they only wake waiters). */
export interface Hooks {
  /** Send buffer space was freed. */
  readonly onSpace: () => void
  /** Frames are ready for `takeDelivered`. */
  readonly onFrames: () => void
}

/** A packet to send: path 0 is the data path, 1 the ACK path. */
export interface Outgoing {
  readonly path: 0 | 1
  readonly bytes: Uint8Array
}

const ItemKind = { Stream: 0, MaxData: 1, MaxStreamData: 2 } as const

/** Something a packet carried that must reach the peer. */
type Item =
  | { readonly kind: 0; readonly stream: SendStream; readonly offset: number; readonly length: number }
  | { readonly kind: 1 }
  | { readonly kind: 2; readonly stream: number }

interface SentPacket {
  readonly number: number
  readonly sentAtMs: number
  readonly bytes: number
  readonly path: 0 | 1
  /** Carries stream data on the data path: counts toward bytes in flight and congestion control. */
  readonly inFlight: boolean
  readonly items: ReadonlyArray<Item>
}

interface Delivery {
  readonly stream: number
  readonly frame: Uint8Array
  readonly endOffset: number
}

/** Packets built per `poll` before the loop yields (so the receiver runs between bursts). */
const burstPacketsMax = 32
/** A stream piece smaller than this is not cut off to fill a packet's tail (avoids tiny segments). */
const segmentBytesMin = 64
/** Packet-threshold loss detection starts at RFC 9002's kPacketThreshold (three later packets acknowledged)… */
const packetThresholdInitial = 3
/** …and grows with the reordering that spurious losses reveal, up to this. */
const packetThresholdMax = 64
/** Time threshold: 9/8 RTT (RFC 9002 kTimeThreshold), growing by 1/8 per spurious loss up to 2 RTT (RFC 8985 §6.2). */
const lossDelayFactorInitial = 9 / 8
const lossDelayFactorMax = 2
/** Losses remembered to spot a spurious one (its ACK arrives later); the oldest are forgotten past it. */
const lostRememberedMax = 128
/** ACK at once after this many ack-eliciting packets (RFC 9000 §13.2.2). */
const ackElicitingThreshold = 2
/** Backoff exponents beyond this add nothing once the timeout is capped. */
const backoffMax = 30

type Counters = {
  -readonly [K in
    | "packetsSent"
    | "packetsReceived"
    | "packetsLost"
    | "packetsLostSpurious"
    | "bytesRetransmitted"
    | "retransmitTimeouts"
    | "acksSent"
    | "coverSent"
    | "coverReceived"
    | "packetsMalformed"
    | "packetsRejected"
    | "flowControlViolations"
    | "duplicatePackets"
    | "duplicateBytes"
    | "streamsBroken"
    | "framesSent"
    | "framesReceived"]: number
}

const zeroCounters = (): Counters => ({
  packetsSent: 0,
  packetsReceived: 0,
  packetsLost: 0,
  packetsLostSpurious: 0,
  bytesRetransmitted: 0,
  retransmitTimeouts: 0,
  acksSent: 0,
  coverSent: 0,
  coverReceived: 0,
  packetsMalformed: 0,
  packetsRejected: 0,
  flowControlViolations: 0,
  duplicatePackets: 0,
  duplicateBytes: 0,
  streamsBroken: 0,
  framesSent: 0,
  framesReceived: 0
})

/** One connection's state. */
export class Machine {
  closed = false
  error: LinkError | undefined
  private readonly counters = zeroCounters()

  // Sending
  private nextNumber = 0
  private readonly sent = new Map<number, SentPacket>()
  private bytesInFlight = 0
  private readonly largestAcked: [number, number] = [-1, -1]
  private readonly rtt = new RttEstimator()
  private backoff = 0
  private rtoArmedAtMs: number | undefined
  private lossTimeMs: number | undefined
  private packetThreshold = packetThresholdInitial
  private lossDelayFactor = lossDelayFactorInitial
  /** Packet number → the largest acknowledged number of its path when it was declared lost. */
  private readonly lostRemembered = new Map<number, number>()
  private readonly sendStreams: Array<SendStream | undefined> = []
  private active: Array<SendStream> = []
  private roundRobin = 0
  private peerMaxData: number
  private sentTotal = 0
  private sendBuffered = 0

  // Receiving
  private readonly receiveStreams: Array<ReceiveStream | undefined> = []
  private readonly received = new RangeSet()
  private largestReceived = -1
  private largestReceivedAtMs = 0
  private ackPending = false
  private ackImmediate = false
  private ackDueMs: number | undefined
  private elicitingSinceAck = 0
  private maxDataAdvertised: number
  private receivedTotal = 0
  private consumedTotal = 0
  private maxDataDirty = false
  private readonly dirtyStreams = new Set<number>()
  private delivered: Array<Delivery> = []

  constructor(private readonly config: Config, private readonly controller: Controller, private readonly hooks: Hooks) {
    this.peerMaxData = config.connectionWindowBytes
    this.maxDataAdvertised = config.connectionWindowBytes
  }

  /** Stops the machine; `error` is what pending and later sends fail with. */
  close(error: LinkError): void {
    this.closed = true
    this.error = error
  }

  // -------------------------------------------------------------------------------------------------
  // Application side

  /** Queues a frame if both send buffers have room; false means wait for `onSpace`. */
  write(stream: number, frame: Uint8Array, control: boolean): boolean {
    const send = this.sendStreams[stream] ?? this.openSend(stream)
    const needed = frame.length + Packet.framePrefixBytes
    if (send.bufferedBytes + needed > this.config.streamSendBufferBytes) return false
    if (this.sendBuffered + needed > this.config.connectionSendBufferBytes) return false
    send.write(frame, control)
    this.sendBuffered += needed
    this.counters.framesSent++
    this.activate(send)
    return true
  }

  /** Hands every delivered frame to the application and opens the windows by what it took. */
  takeDelivered(): Array<Frame> {
    if (this.delivered.length === 0) return []
    const taken = this.delivered
    this.delivered = []
    const frames: Array<Frame> = []
    const quarter = this.config.streamWindowBytes / 4
    for (const delivery of taken) {
      const receive = this.receiveStreams[delivery.stream]!
      receive.consumedOffset = delivery.endOffset
      this.consumedTotal += delivery.frame.length + Packet.framePrefixBytes
      const edge = receive.consumedOffset + this.config.streamWindowBytes
      if (edge - receive.advertisedMax >= quarter) {
        receive.advertisedMax = edge
        this.dirtyStreams.add(receive.id)
      }
      frames.push({ stream: delivery.stream, frame: delivery.frame })
    }
    const edge = this.consumedTotal + this.config.connectionWindowBytes
    if (edge - this.maxDataAdvertised >= this.config.connectionWindowBytes / 4) {
      this.maxDataAdvertised = edge
      this.maxDataDirty = true
    }
    return frames
  }

  stats(): Stats {
    let streamsOpen = 0
    for (const stream of this.sendStreams) if (stream !== undefined) streamsOpen++
    for (const stream of this.receiveStreams) if (stream !== undefined) streamsOpen++
    return {
      ...this.counters,
      smoothedRttMs: this.rtt.smoothedMs,
      rttVariationMs: this.rtt.variationMs,
      retransmitTimeoutMs: this.currentTimeoutMs(),
      congestionWindowBytes: this.controller.windowBytes(),
      bytesInFlight: this.bytesInFlight,
      packetsInFlight: this.sent.size,
      sendBufferedBytes: this.sendBuffered,
      receiveBufferedBytes: this.receivedTotal - this.consumedTotal,
      streamsOpen
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Sender: timers and packets

  /** Runs due timers and returns the packets to send now. */
  poll(nowMs: number): Array<Outgoing> {
    if (this.closed) return []
    if (this.lossTimeMs !== undefined && nowMs >= this.lossTimeMs) this.detectLosses(nowMs)
    if (nowMs >= this.timeoutDeadlineMs()) this.onTimeout(nowMs)
    const outgoing: Array<Outgoing> = []
    if (this.controller.constantRate) this.pollConstantRate(nowMs, outgoing)
    else this.pollWindowed(nowMs, outgoing)
    if (this.config.separateAckPath && this.controlDue(nowMs)) {
      const bytes = this.build(1, nowMs, false, this.controller.constantRate)
      if (bytes !== undefined) outgoing.push({ path: 1, bytes })
    }
    return outgoing
  }

  /** When `poll` should run next (absolute ms); `nowMs` or earlier means at once. */
  nextWakeMs(nowMs: number): number {
    let wake = Math.min(this.timeoutDeadlineMs(), this.lossTimeMs ?? Infinity)
    const acksHere = !this.controller.constantRate || this.config.separateAckPath
    if (acksHere && (this.maxDataDirty || this.dirtyStreams.size > 0)) return nowMs
    if (acksHere && this.ackPending) wake = Math.min(wake, this.ackImmediate ? nowMs : this.ackDueMs ?? Infinity)
    if (this.controller.constantRate) return Math.min(wake, this.controller.nextDepartureMs())
    if (this.canSendData() && this.hasDataWork()) return nowMs
    return wake
  }

  private pollWindowed(nowMs: number, outgoing: Array<Outgoing>): void {
    while (outgoing.length < burstPacketsMax && this.canSendData() && this.hasDataWork()) {
      const bytes = this.build(0, nowMs, true, false)
      if (bytes === undefined) break
      outgoing.push({ path: 0, bytes })
    }
    if (!this.config.separateAckPath && this.controlDue(nowMs)) {
      const bytes = this.build(0, nowMs, false, false)
      if (bytes !== undefined) outgoing.push({ path: 0, bytes })
    }
  }

  /** One full-size packet per departure: data (and ACKs) if there are any, else cover. */
  private pollConstantRate(nowMs: number, outgoing: Array<Outgoing>): void {
    if (nowMs < this.controller.nextDepartureMs()) return
    const withData = this.sent.size < this.config.packetsInFlightMax
    let bytes = this.build(0, nowMs, withData, true)
    if (bytes === undefined) {
      bytes = Packet.cover(this.config.dataMtuBytes)
      this.counters.coverSent++
    }
    this.controller.onPacketSent(bytes.length, this.bytesInFlight, nowMs)
    outgoing.push({ path: 0, bytes })
  }

  private canSendData(): boolean {
    return this.sent.size < this.config.packetsInFlightMax && this.controller.canSend(this.bytesInFlight)
  }

  private controlDue(nowMs: number): boolean {
    const ackDue = this.ackPending && (this.ackImmediate || nowMs >= (this.ackDueMs ?? Infinity))
    return ackDue || this.maxDataDirty || this.dirtyStreams.size > 0
  }

  private hasDataWork(): boolean {
    const connectionRoom = this.peerMaxData > this.sentTotal
    for (const stream of this.active) {
      if (stream.lost.size > 0 || (connectionRoom && stream.newAllowed() > 0)) return true
    }
    return false
  }

  /**
   * Builds one packet for `path`: ACK and window updates when it is the ACK path, stream data when
   * `withData`. Returns undefined (and uses no packet number) when there is nothing to put in it.
   */
  private build(path: 0 | 1, nowMs: number, withData: boolean, padded: boolean): Uint8Array | undefined {
    const number = this.nextNumber
    const writer = new Packet.Writer(path === 0 ? this.config.dataMtuBytes : this.config.acksMtuBytes, number)
    const items: Array<Item> = []
    const carriesControl = path === 1 || !this.config.separateAckPath
    const wroteAck = carriesControl && this.ackPending &&
      writer.ack(this.received, nowMs - this.largestReceivedAtMs, this.config.ackRangesMax)
    if (carriesControl) this.writeWindowUpdates(writer, items)
    let streamBytes = false
    if (withData && path === 0) streamBytes = this.writeStreams(writer, number, items)
    if (items.length === 0 && !wroteAck) return undefined
    this.nextNumber++
    this.counters.packetsSent++
    if (wroteAck) this.ackSent()
    const bytes = writer.finish(padded)
    if (items.length > 0) this.remember(number, nowMs, bytes.length, path, streamBytes, items)
    return bytes
  }

  private remember(
    number: number,
    nowMs: number,
    bytes: number,
    path: 0 | 1,
    streamBytes: boolean,
    items: ReadonlyArray<Item>
  ): void {
    const inFlight = path === 0 && streamBytes
    this.sent.set(number, { number, sentAtMs: nowMs, bytes, path, inFlight, items })
    if (inFlight) {
      this.bytesInFlight += bytes
      if (!this.controller.constantRate) this.controller.onPacketSent(bytes, this.bytesInFlight, nowMs)
    }
    if (this.rtoArmedAtMs === undefined) this.rtoArmedAtMs = nowMs
  }

  private ackSent(): void {
    this.counters.acksSent++
    this.ackPending = false
    this.ackImmediate = false
    this.ackDueMs = undefined
    this.elicitingSinceAck = 0
  }

  private writeWindowUpdates(writer: Packet.Writer, items: Array<Item>): void {
    if (this.maxDataDirty && writer.remaining >= Packet.maxDataBytes) {
      writer.maxData(this.maxDataAdvertised)
      items.push({ kind: ItemKind.MaxData })
      this.maxDataDirty = false
    }
    for (const stream of this.dirtyStreams) {
      if (writer.remaining < Packet.maxStreamDataBytes) break
      writer.maxStreamData(stream, this.receiveStreams[stream]!.advertisedMax)
      items.push({ kind: ItemKind.MaxStreamData, stream })
      this.dirtyStreams.delete(stream)
    }
  }

  /**
   * Fills the packet with stream data: first streams holding bytes before a control frame's end,
   * then retransmissions, then new data, round-robin over the active streams; one frame per stream.
   */
  private writeStreams(writer: Packet.Writer, number: number, items: Array<Item>): boolean {
    const active = this.active
    const count = active.length
    if (count === 0) return false
    this.roundRobin = (this.roundRobin + 1) % count
    let wrote = false
    for (let pass = 0; pass < 3; pass++) {
      for (let step = 0; step < count; step++) {
        if (writer.remaining <= Packet.streamHeaderBytes) break
        const stream = active[(this.roundRobin + step) % count]!
        if (stream.lastPacket === number) continue
        const eligible = pass === 0 ? stream.isUrgent() : pass === 1 ? stream.lost.size > 0 : true
        if (eligible && this.writeStreamFrame(writer, stream, number, items)) wrote = true
      }
    }
    this.active = active.filter((stream) => (stream.active = stream.hasWork()))
    return wrote
  }

  private writeStreamFrame(writer: Packet.Writer, stream: SendStream, number: number, items: Array<Item>): boolean {
    const room = Math.min(0xffff, writer.remaining - Packet.streamHeaderBytes)
    let offset: number
    let available: number
    const retransmit = stream.lost.size > 0
    if (retransmit) {
      offset = stream.lost.start(0)
      available = stream.lost.end(0) - offset
    } else {
      offset = stream.sendOffset
      available = Math.min(stream.newAllowed(), this.peerMaxData - this.sentTotal)
    }
    const length = Math.min(available, room)
    // Only a packet's tail is left unfilled: a fresh packet always takes what fits.
    if (length <= 0 || (length < available && length < segmentBytesMin && items.length > 0)) return false
    stream.copy(offset, length, writer.buffer, writer.streamHeader(stream.id, offset, length))
    if (retransmit) {
      stream.lost.remove(offset, offset + length)
      this.counters.bytesRetransmitted += length
    } else {
      stream.sendOffset += length
      this.sentTotal += length
    }
    stream.lastPacket = number
    items.push({ kind: ItemKind.Stream, stream, offset, length })
    return true
  }

  // -------------------------------------------------------------------------------------------------
  // Sender: acknowledgements, losses, timeouts

  private currentTimeoutMs(): number {
    const { ackDelayMaxMs, rtoInitialMs, rtoMaxMs, rtoMinMs } = this.config
    const base = this.rtt.timeoutMs(rtoInitialMs, rtoMinMs, rtoMaxMs, ackDelayMaxMs)
    return Math.min(rtoMaxMs, base * 2 ** this.backoff)
  }

  private timeoutDeadlineMs(): number {
    if (this.rtoArmedAtMs === undefined || this.sent.size === 0) return Infinity
    return this.rtoArmedAtMs + this.currentTimeoutMs()
  }

  /** RFC 6298 §5.4–5.6: everything outstanding goes again, the timer backs off. */
  private onTimeout(nowMs: number): void {
    const outstanding = Array.from(this.sent.values())
    const hadInFlight = outstanding.some((packet) => packet.inFlight)
    this.declareLost(outstanding, nowMs, true)
    if (hadInFlight) this.controller.onTimeout(nowMs)
    this.backoff = Math.min(backoffMax, this.backoff + 1)
    this.rtoArmedAtMs = undefined
    this.counters.retransmitTimeouts++
  }

  private onAck(ack: Packet.Ack, nowMs: number): void {
    const ranges = ack.ranges
    let index = ranges.length - 2 // the lowest [high, low] pair
    const newlyAcked: Array<SentPacket> = []
    for (const packet of this.sent.values()) {
      while (index >= 0 && ranges[index]! < packet.number) index -= 2
      if (index < 0) break
      if (ranges[index + 1]! <= packet.number) newlyAcked.push(packet)
    }
    if (this.lostRemembered.size > 0) this.detectSpurious(ranges)
    if (newlyAcked.length === 0) return
    const latest = newlyAcked[newlyAcked.length - 1]!
    if (latest.number === ack.largest) {
      this.rtt.update(nowMs - latest.sentAtMs, Math.min(ack.delayMs, this.config.ackDelayMaxMs))
    }
    let freed = 0
    for (const packet of newlyAcked) {
      this.sent.delete(packet.number)
      this.largestAcked[packet.path] = Math.max(this.largestAcked[packet.path], packet.number)
      if (packet.inFlight) {
        this.bytesInFlight -= packet.bytes
        this.controller.onAck(packet.bytes, packet.sentAtMs, nowMs)
      }
      for (const item of packet.items) {
        if (item.kind === ItemKind.Stream) freed += item.stream.onAcked(item.offset, item.length)
      }
    }
    // New data acknowledged: the backoff ends and the timer restarts (RFC 6298 §5.3, §5.7).
    this.backoff = 0
    this.rtoArmedAtMs = this.sent.size > 0 ? nowMs : undefined
    this.detectLosses(nowMs)
    if (freed > 0) {
      this.sendBuffered -= freed
      this.hooks.onSpace()
    }
  }

  /** Packet- and time-threshold loss detection against the largest acknowledged packet of each path. */
  private detectLosses(nowMs: number): void {
    const lossDelayMs = this.rtt.lossDelayMs(this.config.rtoInitialMs) * this.lossDelayFactor
    const lost: Array<SentPacket> = []
    this.lossTimeMs = undefined
    for (const packet of this.sent.values()) {
      const largest = this.largestAcked[packet.path]
      if (packet.number > largest) continue
      // The same sum decides now and schedules later, so a due loss timer always finds its packet.
      const lossAtMs = packet.sentAtMs + lossDelayMs
      if (packet.number <= largest - this.packetThreshold || lossAtMs <= nowMs) lost.push(packet)
      else this.lossTimeMs = Math.min(this.lossTimeMs ?? Infinity, lossAtMs)
    }
    if (lost.length > 0) this.declareLost(lost, nowMs, false)
  }

  private declareLost(lost: ReadonlyArray<SentPacket>, nowMs: number, byTimeout: boolean): void {
    let lostBytes = 0
    let latestSentMs = -Infinity
    for (const packet of lost) {
      this.sent.delete(packet.number)
      this.counters.packetsLost++
      this.rememberLost(packet)
      if (packet.inFlight) {
        this.bytesInFlight -= packet.bytes
        lostBytes += packet.bytes
        latestSentMs = Math.max(latestSentMs, packet.sentAtMs)
      }
      for (const item of packet.items) this.requeue(item)
    }
    if (!byTimeout && lostBytes > 0) this.controller.onLoss(lostBytes, latestSentMs, nowMs)
  }

  private rememberLost(packet: SentPacket): void {
    this.lostRemembered.set(packet.number, this.largestAcked[packet.path])
    if (this.lostRemembered.size > lostRememberedMax) {
      this.lostRemembered.delete(this.lostRemembered.keys().next().value!)
    }
  }

  /**
   * A packet declared lost and acknowledged after all was only reordered: widen both loss thresholds
   * to the reordering seen, so a path that reorders (a multi-hop circuit with jitter) stops paying
   * for retransmissions and window cuts it does not need.
   */
  private detectSpurious(ranges: ReadonlyArray<number>): void {
    for (const [number, largestThen] of this.lostRemembered) {
      let acked = false
      for (let index = 0; index < ranges.length && !acked; index += 2) {
        acked = ranges[index + 1]! <= number && number <= ranges[index]!
      }
      if (!acked) continue
      this.lostRemembered.delete(number)
      this.counters.packetsLostSpurious++
      this.packetThreshold = Math.min(packetThresholdMax, Math.max(this.packetThreshold, largestThen - number + 1))
      this.lossDelayFactor = Math.min(lossDelayFactorMax, this.lossDelayFactor + 1 / 8)
    }
  }

  private requeue(item: Item): void {
    switch (item.kind) {
      case ItemKind.Stream:
        item.stream.onLost(item.offset, item.length)
        this.activate(item.stream)
        return
      case ItemKind.MaxData:
        this.maxDataDirty = true
        return
      case ItemKind.MaxStreamData:
        this.dirtyStreams.add(item.stream)
        return
    }
  }

  private activate(stream: SendStream): void {
    if (stream.active) return
    stream.active = true
    this.active.push(stream)
  }

  private openSend(id: number): SendStream {
    const stream = new SendStream(id, this.config.streamWindowBytes)
    this.sendStreams[id] = stream
    return stream
  }

  // -------------------------------------------------------------------------------------------------
  // Receiver

  /** Processes one untrusted datagram. Never throws: bad input is counted and dropped. */
  onDatagram(bytes: Uint8Array, nowMs: number): void {
    if (this.closed) return
    this.counters.packetsReceived++
    const packet = Packet.decode(bytes)
    if (packet === undefined) return void this.counters.packetsMalformed++
    if (packet.kind === "cover") return void this.counters.coverReceived++
    if (!this.acceptable(packet)) return
    for (const ack of packet.acks) this.onAck(ack, nowMs)
    this.onWindowUpdates(packet)
    for (const data of packet.streams) this.onStreamData(data)
    this.onReceived(packet.number, packet.ackEliciting, nowMs)
    if (this.delivered.length > 0) this.hooks.onFrames()
  }

  /** Checks a packet whole before any of it is applied; counts why it is refused. */
  private acceptable(packet: Packet.DataPacket): boolean {
    const refusal = this.refusal(packet)
    if (refusal !== undefined) this.counters[refusal]++
    return refusal === undefined
  }

  private refusal(packet: Packet.DataPacket): "packetsMalformed" | "packetsRejected" | "flowControlViolations" | undefined {
    // Acknowledging a number never sent is a lie no honest peer tells.
    if (packet.acks.some((ack) => ack.largest >= this.nextNumber)) return "packetsMalformed"
    const { streamsMax } = this.config
    for (let index = 0; index < packet.maxStreamData.length; index += 2) {
      if (packet.maxStreamData[index]! >= streamsMax) return "packetsRejected"
    }
    let growth = 0
    for (const { data, offset, stream } of packet.streams) {
      if (stream >= streamsMax) return "packetsRejected"
      const receive = this.receiveStreams[stream]
      const end = offset + data.length
      if (end > (receive?.advertisedMax ?? this.config.streamWindowBytes)) return "flowControlViolations"
      growth += Math.max(0, end - (receive?.highestOffset ?? 0))
      const segments = receive === undefined ? 0 : receive.pending.length + receive.segmentsAdded(offset, end)
      if (segments > this.config.reorderSegmentsMax) return "packetsRejected"
    }
    if (this.receivedTotal + growth > this.maxDataAdvertised) return "flowControlViolations"
    return undefined
  }

  private onWindowUpdates(packet: Packet.DataPacket): void {
    if (packet.maxData !== undefined) this.peerMaxData = Math.max(this.peerMaxData, packet.maxData)
    for (let index = 0; index < packet.maxStreamData.length; index += 2) {
      const id = packet.maxStreamData[index]!
      const stream = this.sendStreams[id] ?? this.openSend(id)
      const edge = packet.maxStreamData[index + 1]!
      if (edge > stream.maxOffset) {
        stream.maxOffset = edge
        if (stream.hasWork()) this.activate(stream)
      }
    }
  }

  private onStreamData(data: Packet.StreamData): void {
    const receive = this.receiveStreams[data.stream] ?? this.openReceive(data.stream)
    const highestBefore = receive.highestOffset
    const wasBroken = receive.broken
    this.counters.duplicateBytes += receive.insert(data.offset, data.data, (frame, endOffset) => {
      this.delivered.push({ stream: data.stream, frame, endOffset })
      this.counters.framesReceived++
    })
    this.receivedTotal += receive.highestOffset - highestBefore
    if (receive.broken && !wasBroken) this.counters.streamsBroken++
  }

  private openReceive(id: number): ReceiveStream {
    const stream = new ReceiveStream(id, this.config.streamWindowBytes, this.config.frameBytesMax)
    this.receiveStreams[id] = stream
    return stream
  }

  /**
   * Records a packet number (every DATA packet's, so ACK-only packets leave no holes in the ranges)
   * and, for an ack-eliciting packet, decides when to acknowledge it.
   */
  private onReceived(number: number, ackEliciting: boolean, nowMs: number): void {
    if (this.received.has(number)) {
      if (ackEliciting) this.counters.duplicatePackets++
    } else {
      const gap = this.largestReceived >= 0 && number !== this.largestReceived + 1
      this.received.add(number, number + 1)
      while (this.received.size > this.config.ackRangesMax) this.received.dropFirst()
      if (number > this.largestReceived) {
        this.largestReceived = number
        this.largestReceivedAtMs = nowMs
      }
      // A gap, or a packet filling one, is loss evidence the sender needs now.
      if (gap && ackEliciting) this.ackImmediate = true
    }
    if (!ackEliciting) return
    this.ackPending = true
    if (++this.elicitingSinceAck >= ackElicitingThreshold) this.ackImmediate = true
    this.ackDueMs ??= nowMs + this.config.ackDelayMaxMs
  }
}
