/**
 * The sending half of one stream: the bytes the application wrote and the peer has not acknowledged,
 * which of them are still to be sent, and which were lost and must go again. Bytes are addressed by
 * stream offset; the buffer holds [ackedPrefix, writeOffset), so it is bounded by what `write` admits.
 */
import { framePrefixBytes, writeFramePrefix } from "./streamsPacket.js"
import { RangeSet } from "./streamsRanges.js"

interface Chunk {
  readonly offset: number
  readonly bytes: Uint8Array
}

/** One stream's send state. */
export class SendStream {
  private readonly chunks: Array<Chunk> = []
  private head = 0
  /** End of what the application wrote. */
  writeOffset = 0
  /** Next byte never sent. */
  sendOffset = 0
  /** Every byte below this is acknowledged (and freed). */
  ackedPrefix = 0
  /** Acknowledged ranges above `ackedPrefix`. */
  private readonly acked = new RangeSet()
  /** Sent ranges declared lost and not acknowledged since. */
  readonly lost = new RangeSet()
  /** The peer's window edge for this stream. */
  maxOffset: number
  /** End of the latest control-priority frame: bytes before it go ahead of bulk data. */
  controlUntil = 0
  /** Number of the packet this stream last put a frame in (one frame per stream per packet). */
  lastPacket = -1
  /** Whether the stream sits in the sender's active list. */
  active = false

  constructor(readonly id: number, initialMaxOffset: number) {
    this.maxOffset = initialMaxOffset
  }

  /** Bytes held: written and not yet acknowledged. */
  get bufferedBytes(): number {
    return this.writeOffset - this.ackedPrefix
  }

  /** Appends one frame of the layer above (its length prefix, then its bytes). */
  write(frame: Uint8Array, control: boolean): void {
    const bytes = new Uint8Array(framePrefixBytes + frame.length)
    writeFramePrefix(bytes, 0, frame.length)
    bytes.set(frame, framePrefixBytes)
    this.chunks.push({ offset: this.writeOffset, bytes })
    this.writeOffset += bytes.length
    if (control) this.controlUntil = this.writeOffset
  }

  /** New bytes the stream's own window allows now. */
  newAllowed(): number {
    return Math.max(0, Math.min(this.writeOffset, this.maxOffset) - this.sendOffset)
  }

  /** Whether anything is waiting to be sent (lost or new, window permitting). */
  hasWork(): boolean {
    return this.lost.size > 0 || this.newAllowed() > 0
  }

  /** Whether the next bytes this stream would send belong before a control frame's end. */
  isUrgent(): boolean {
    if (this.lost.size > 0) return this.lost.start(0) < this.controlUntil
    return this.sendOffset < this.controlUntil && this.newAllowed() > 0
  }

  /** Copies stream bytes [offset, offset + length) into `target` at `at`. */
  copy(offset: number, length: number, target: Uint8Array, at: number): void {
    let index = this.chunkIndexOf(offset)
    let position = offset
    const end = offset + length
    while (position < end) {
      const chunk = this.chunks[index]!
      const from = position - chunk.offset
      const take = Math.min(chunk.bytes.length - from, end - position)
      target.set(chunk.bytes.subarray(from, from + take), at + (position - offset))
      position += take
      index++
    }
  }

  /** Marks [offset, offset + length) acknowledged; returns the bytes freed from the buffer. */
  onAcked(offset: number, length: number): number {
    this.acked.add(offset, offset + length)
    this.lost.remove(offset, offset + length)
    const before = this.ackedPrefix
    while (this.acked.size > 0 && this.acked.start(0) <= this.ackedPrefix) {
      this.ackedPrefix = Math.max(this.ackedPrefix, this.acked.end(0))
      this.acked.dropFirst()
    }
    this.lost.remove(0, this.ackedPrefix)
    while (this.head < this.chunks.length) {
      const chunk = this.chunks[this.head]!
      if (chunk.offset + chunk.bytes.length > this.ackedPrefix) break
      this.head++
    }
    // Compact now and then, so the array does not keep freed chunks alive.
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks.splice(0, this.head)
      this.head = 0
    }
    return this.ackedPrefix - before
  }

  /** Marks [offset, offset + length) lost: its unacknowledged parts will be sent again. */
  onLost(offset: number, length: number): void {
    const start = Math.max(offset, this.ackedPrefix)
    const end = offset + length
    if (end <= start) return
    this.lost.add(start, end)
    for (let index = 0; index < this.acked.size; index++) {
      if (this.acked.start(index) >= end) break
      this.lost.remove(this.acked.start(index), this.acked.end(index))
    }
  }

  private chunkIndexOf(offset: number): number {
    let low = this.head
    let high = this.chunks.length - 1
    while (low < high) {
      const middle = (low + high + 1) >> 1
      if (this.chunks[middle]!.offset <= offset) low = middle
      else high = middle - 1
    }
    return low
  }
}
