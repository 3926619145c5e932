/**
 * The stream layer's packet format: encoding and the one decoder of untrusted packets. Plain code over
 * buffers (per-packet hot path). All integers are big-endian; u48 values stay exact in a JS number.
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 1 | packet type: 1 DATA, 2 COVER (a fixed-rate filler; the rest is ignored) |
 * | 1 | 6 | packet number (u48; DATA only; never reused, retransmissions take new ones) |
 * | 7 | … | frames, then zero bytes (a 0 frame type is PADDING: it ends the packet) |
 *
 * | frame | body |
 * |---|---|
 * | 0x01 ACK | largest u48 ‖ ack delay ms u16 ‖ range count u8 (≥ 1) ‖ first range length u32 ‖ (gap u32 ‖ length u32) × (count − 1) |
 * | 0x02 STREAM | stream u16 ‖ offset u48 ‖ length u16 ‖ bytes |
 * | 0x03 MAX_DATA | connection window edge u48 |
 * | 0x04 MAX_STREAM_DATA | stream u16 ‖ stream window edge u48 |
 * | 0x05 PING | — |
 *
 * ACK ranges follow QUIC: the first covers [largest − length, largest]; each next one ends at
 * `previous smallest − gap − 2` and spans `length + 1` packets. Every frame but ACK (and PADDING) makes
 * the packet ack-eliciting. Inside a stream, bytes are frames of the layer above, each a u32 length
 * and that many bytes, so a frame may span packets and a packet may hold pieces of several frames.
 */
import type { RangeSet } from "./streamsRanges.js"

/** Packet types. */
export const PacketType = { Data: 1, Cover: 2 } as const

/** Frame types. */
export const FrameType = { Padding: 0, Ack: 1, Stream: 2, MaxData: 3, MaxStreamData: 4, Ping: 5 } as const

/** Bytes before the first frame of a DATA packet. */
export const headerBytes = 7
/** Bytes of a STREAM frame before its data. */
export const streamHeaderBytes = 11
/** Bytes of a MAX_DATA frame. */
export const maxDataBytes = 7
/** Bytes of a MAX_STREAM_DATA frame. */
export const maxStreamDataBytes = 9
/** Bytes of an ACK frame with `ranges` ranges. */
export const ackBytes = (ranges: number): number => 14 + 8 * (ranges - 1)
/** Bytes of the length prefix of a frame of the layer above, inside a stream. */
export const framePrefixBytes = 4
/** Smallest MTU the format works with: a header, a one-range ACK, window updates and some data. */
export const mtuBytesMin = 64

const TWO_POW_32 = 4294967296

/** One ACK frame. `ranges` holds inclusive [high, low] pairs, highest first. */
export interface Ack {
  readonly largest: number
  readonly delayMs: number
  readonly ranges: ReadonlyArray<number>
}

/** One STREAM frame; `data` is a view into the datagram. */
export interface StreamData {
  readonly stream: number
  readonly offset: number
  readonly data: Uint8Array
}

/** A decoded DATA packet. */
export interface DataPacket {
  readonly kind: "data"
  readonly number: number
  readonly acks: ReadonlyArray<Ack>
  readonly streams: ReadonlyArray<StreamData>
  readonly maxData: number | undefined
  /** [stream, edge] pairs. */
  readonly maxStreamData: ReadonlyArray<number>
  readonly ackEliciting: boolean
}

/** A decoded packet. */
export type Packet = DataPacket | { readonly kind: "cover" }

const readU48 = (bytes: Uint8Array, at: number): number =>
  ((bytes[at]! << 8) | bytes[at + 1]!) * TWO_POW_32 + readU32(bytes, at + 2)

const readU32 = (bytes: Uint8Array, at: number): number =>
  ((bytes[at]! << 24) >>> 0) + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!)

const readU16 = (bytes: Uint8Array, at: number): number => (bytes[at]! << 8) | bytes[at + 1]!

const writeU48 = (bytes: Uint8Array, at: number, value: number): void => {
  const high = Math.floor(value / TWO_POW_32)
  bytes[at] = high >>> 8
  bytes[at + 1] = high
  writeU32(bytes, at + 2, value >>> 0)
}

const writeU32 = (bytes: Uint8Array, at: number, value: number): void => {
  bytes[at] = value >>> 24
  bytes[at + 1] = value >>> 16
  bytes[at + 2] = value >>> 8
  bytes[at + 3] = value
}

const writeU16 = (bytes: Uint8Array, at: number, value: number): void => {
  bytes[at] = value >>> 8
  bytes[at + 1] = value
}

/** Decodes an ACK frame body at `at`; returns the frame and the next position, or undefined. */
const decodeAck = (bytes: Uint8Array, at: number): [Ack, number] | undefined => {
  if (at + 13 > bytes.length) return undefined
  const largest = readU48(bytes, at)
  const delayMs = readU16(bytes, at + 6)
  const count = bytes[at + 8]!
  let position = at + 13
  if (count === 0 || position + 8 * (count - 1) > bytes.length) return undefined
  let low = largest - readU32(bytes, at + 9)
  if (low < 0) return undefined
  const ranges: Array<number> = [largest, low]
  for (let index = 1; index < count; index++) {
    const high = low - readU32(bytes, position) - 2
    low = high - readU32(bytes, position + 4)
    position += 8
    if (high < 0 || low < 0) return undefined
    ranges.push(high, low)
  }
  return [{ largest, delayMs, ranges }, position]
}

interface Collected {
  acks: Array<Ack>
  streams: Array<StreamData>
  maxData: number | undefined
  maxStreamData: Array<number>
  ackEliciting: boolean
}

/** Decodes one frame at `at` into `into`; returns the next position, `length` at PADDING, or -1. */
const decodeFrame = (bytes: Uint8Array, at: number, into: Collected): number => {
  const type = bytes[at]!
  const body = at + 1
  switch (type) {
    case FrameType.Padding:
      return bytes.length
    case FrameType.Ack: {
      const decoded = decodeAck(bytes, body)
      if (decoded === undefined) return -1
      into.acks.push(decoded[0])
      return decoded[1]
    }
    case FrameType.Stream: {
      if (body + 10 > bytes.length) return -1
      const length = readU16(bytes, body + 8)
      if (body + 10 + length > bytes.length || length === 0) return -1
      into.streams.push({
        stream: readU16(bytes, body),
        offset: readU48(bytes, body + 2),
        data: bytes.subarray(body + 10, body + 10 + length)
      })
      into.ackEliciting = true
      return body + 10 + length
    }
    case FrameType.MaxData:
      if (body + 6 > bytes.length) return -1
      into.maxData = Math.max(into.maxData ?? 0, readU48(bytes, body))
      into.ackEliciting = true
      return body + 6
    case FrameType.MaxStreamData:
      if (body + 8 > bytes.length) return -1
      into.maxStreamData.push(readU16(bytes, body), readU48(bytes, body + 2))
      into.ackEliciting = true
      return body + 8
    case FrameType.Ping:
      into.ackEliciting = true
      return body
    default:
      return -1
  }
}

/** Decodes an untrusted datagram; `undefined` when it is malformed in any way. Never throws. */
export const decode = (bytes: Uint8Array): Packet | undefined => {
  if (bytes.length === 0) return undefined
  if (bytes[0] === PacketType.Cover) return { kind: "cover" }
  if (bytes[0] !== PacketType.Data || bytes.length < headerBytes) return undefined
  const into: Collected = { acks: [], streams: [], maxData: undefined, maxStreamData: [], ackEliciting: false }
  let position = headerBytes
  while (position < bytes.length) {
    position = decodeFrame(bytes, position, into)
    if (position < 0) return undefined
  }
  return { kind: "data", number: readU48(bytes, 1), ...into }
}

/** A full-size COVER packet. */
export const cover = (mtuBytes: number): Uint8Array => {
  const bytes = new Uint8Array(mtuBytes)
  bytes[0] = PacketType.Cover
  return bytes
}

/** Builds one DATA packet in place, frame by frame; callers check `remaining` first. */
export class Writer {
  readonly buffer: Uint8Array
  position = headerBytes

  constructor(mtuBytes: number, number: number) {
    this.buffer = new Uint8Array(mtuBytes)
    this.buffer[0] = PacketType.Data
    writeU48(this.buffer, 1, number)
  }

  get remaining(): number {
    return this.buffer.length - this.position
  }

  /** Writes an ACK of the highest ranges of `received` that fit (at most `rangesMax`). */
  ack(received: RangeSet, delayMs: number, rangesMax: number): boolean {
    const fit = Math.min(rangesMax, received.size, Math.floor((this.remaining - 14) / 8) + 1)
    if (fit < 1) return false
    const bytes = this.buffer
    let index = received.size - 1
    const largest = received.end(index) - 1
    let at = this.position
    bytes[at] = FrameType.Ack
    writeU48(bytes, at + 1, largest)
    writeU16(bytes, at + 7, Math.min(0xffff, Math.max(0, Math.round(delayMs))))
    bytes[at + 9] = fit
    writeU32(bytes, at + 10, largest - received.start(index))
    at += 14
    for (let written = 1; written < fit; written++) {
      const previousLow = received.start(index)
      index--
      const high = received.end(index) - 1
      writeU32(bytes, at, previousLow - high - 2)
      writeU32(bytes, at + 4, high - received.start(index))
      at += 8
    }
    this.position = at
    return true
  }

  /** Writes a STREAM frame header; the caller copies `length` bytes at the returned position. */
  streamHeader(stream: number, offset: number, length: number): number {
    const bytes = this.buffer
    const at = this.position
    bytes[at] = FrameType.Stream
    writeU16(bytes, at + 1, stream)
    writeU48(bytes, at + 3, offset)
    writeU16(bytes, at + 9, length)
    this.position = at + streamHeaderBytes + length
    return at + streamHeaderBytes
  }

  maxData(edge: number): void {
    this.buffer[this.position] = FrameType.MaxData
    writeU48(this.buffer, this.position + 1, edge)
    this.position += maxDataBytes
  }

  maxStreamData(stream: number, edge: number): void {
    this.buffer[this.position] = FrameType.MaxStreamData
    writeU16(this.buffer, this.position + 1, stream)
    writeU48(this.buffer, this.position + 3, edge)
    this.position += maxStreamDataBytes
  }

  ping(): void {
    this.buffer[this.position++] = FrameType.Ping
  }

  /** The packet: full size (zero padding) when `padded`, else just the frames. */
  finish(padded: boolean): Uint8Array {
    return padded ? this.buffer : this.buffer.subarray(0, this.position)
  }
}

/** Writes a frame prefix (the u32 length of a frame of the layer above). */
export const writeFramePrefix = (bytes: Uint8Array, at: number, length: number): void => writeU32(bytes, at, length)

/** Reads a frame prefix. */
export const readFramePrefix = (bytes: Uint8Array, at: number): number => readU32(bytes, at)
