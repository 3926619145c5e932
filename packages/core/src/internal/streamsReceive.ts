/**
 * The receiving half of one stream: out-of-order segments held until the gap before them fills, the
 * contiguous bytes cut back into the frames of the layer above, and the window this side advertises.
 * Everything held is below the advertised window edge, so the connection window bounds it all.
 */
import { framePrefixBytes, readFramePrefix } from "./streamsPacket.js"

interface Segment {
  readonly offset: number
  readonly bytes: Uint8Array
}

/** Called with each complete frame and the stream offset just past it. */
export type Deliver = (frame: Uint8Array, endOffset: number) => void

/** One stream's receive state. */
export class ReceiveStream {
  /** Every byte below this was received and handed to the frame parser. */
  readOffset = 0
  /** Highest offset ever received (its sum over streams is checked against the connection window). */
  highestOffset = 0
  /** The window edge advertised to the peer. */
  advertisedMax: number
  /** End of the last frame the application took. */
  consumedOffset = 0
  /** A frame length above the limit arrived: the stream's data is discarded from then on. */
  broken = false
  /** Out-of-order segments, sorted, disjoint, all above `readOffset`. */
  readonly pending: Array<Segment> = []
  private readonly prefix = new Uint8Array(framePrefixBytes)
  private prefixFill = 0
  private frameLength = -1
  private parts: Array<Uint8Array> = []
  private partsFill = 0

  constructor(readonly id: number, window: number, private readonly frameBytesMax: number) {
    this.advertisedMax = window
  }

  /** Bytes held out of order. */
  get pendingBytes(): number {
    let total = 0
    for (const segment of this.pending) total += segment.bytes.length
    return total
  }

  /**
   * How many new out-of-order segments accepting [offset, end) would add: 0 when it is a duplicate
   * or fills the gap at `readOffset` (it drains at once), else the uncovered pieces it has.
   */
  segmentsAdded(offset: number, end: number): number {
    if (end <= this.readOffset || this.broken) return 0
    let pieces = 0
    let cursor = Math.max(offset, this.readOffset)
    for (let index = this.firstEndingAfter(cursor); index < this.pending.length; index++) {
      const segment = this.pending[index]!
      if (segment.offset >= end) break
      if (segment.offset > cursor) pieces++
      cursor = Math.max(cursor, segment.offset + segment.bytes.length)
    }
    if (cursor < end) pieces++
    return offset <= this.readOffset ? Math.max(0, pieces - 1) : pieces
  }

  /** Accepts stream bytes at `offset`; returns how many of them were already held (duplicates). */
  insert(offset: number, data: Uint8Array, deliver: Deliver): number {
    const end = offset + data.length
    this.highestOffset = Math.max(this.highestOffset, end)
    if (this.broken) return 0
    if (end <= this.readOffset) return data.length
    let duplicate = 0
    let cursor = offset
    if (cursor < this.readOffset) {
      duplicate += this.readOffset - cursor
      cursor = this.readOffset
    }
    let index = this.firstEndingAfter(cursor)
    while (cursor < end) {
      const segment = this.pending[index]
      const pieceEnd = segment === undefined ? end : Math.min(end, segment.offset)
      if (pieceEnd > cursor) {
        // Copied: a view would pin the whole datagram for a piece that may be one byte.
        this.pending.splice(index, 0, { offset: cursor, bytes: data.slice(cursor - offset, pieceEnd - offset) })
        index++
        cursor = pieceEnd
      }
      if (segment === undefined || cursor >= end) break
      const segmentEnd = segment.offset + segment.bytes.length
      duplicate += Math.max(0, Math.min(end, segmentEnd) - cursor)
      cursor = Math.max(cursor, segmentEnd)
      index++
    }
    this.drain(deliver)
    return duplicate
  }

  /** Hands the contiguous prefix of the pending segments to the frame parser. */
  private drain(deliver: Deliver): void {
    while (!this.broken && this.pending.length > 0 && this.pending[0]!.offset === this.readOffset) {
      const segment = this.pending.shift()!
      this.parse(segment.bytes, deliver)
      this.readOffset += segment.bytes.length
    }
    if (this.broken) this.pending.length = 0
  }

  /** Cuts contiguous stream bytes (starting at `readOffset`) into frames. */
  private parse(bytes: Uint8Array, deliver: Deliver): void {
    let position = 0
    while (position < bytes.length && !this.broken) {
      if (this.frameLength < 0) {
        const take = Math.min(framePrefixBytes - this.prefixFill, bytes.length - position)
        this.prefix.set(bytes.subarray(position, position + take), this.prefixFill)
        this.prefixFill += take
        position += take
        if (this.prefixFill < framePrefixBytes) break
        this.prefixFill = 0
        this.frameLength = readFramePrefix(this.prefix, 0)
        if (this.frameLength > this.frameBytesMax) {
          this.broken = true
          break
        }
      }
      const take = Math.min(this.frameLength - this.partsFill, bytes.length - position)
      if (take > 0) this.parts.push(bytes.subarray(position, position + take))
      this.partsFill += take
      position += take
      if (this.partsFill === this.frameLength) {
        deliver(this.assemble(), this.readOffset + position)
        this.frameLength = -1
      }
    }
  }

  private assemble(): Uint8Array {
    const parts = this.parts
    this.parts = []
    this.partsFill = 0
    if (parts.length === 1) return parts[0]!
    const frame = new Uint8Array(this.frameLength)
    let at = 0
    for (const part of parts) {
      frame.set(part, at)
      at += part.length
    }
    return frame
  }

  private firstEndingAfter(value: number): number {
    let low = 0
    let high = this.pending.length
    while (low < high) {
      const middle = (low + high) >> 1
      const segment = this.pending[middle]!
      if (segment.offset + segment.bytes.length > value) high = middle
      else low = middle + 1
    }
    return low
  }
}
