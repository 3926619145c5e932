/**
 * The bytes the impaired-UDP test sends: per stream, a byte string and a cut into frames, both derived
 * from the run's seed, so the receiver regenerates exactly what it must see and checks each frame.
 */
import { createHash } from "node:crypto"

/** What one stream carries: its bytes and the lengths of the frames they are cut into, in order. */
export interface StreamPayload {
  readonly stream: number
  readonly bytes: Uint8Array
  readonly frameLengths: ReadonlyArray<number>
  /** SHA-256 of `bytes`, hex. */
  readonly sha256: string
}

// sfc32: small, fast and good enough for test data; seeded per (seed, stream, purpose) so streams differ.
const sfc32 = (a: number, b: number, c: number, d: number) => (): number => {
  a >>>= 0, b >>>= 0, c >>>= 0, d >>>= 0
  const t = (((a + b) | 0) + d) | 0
  d = (d + 1) | 0
  a = b ^ (b >>> 9)
  b = (c + (c << 3)) | 0
  c = (c << 21) | (c >>> 11)
  c = (c + t) | 0
  return t >>> 0
}

/** A 32-bit generator for `seed`, `stream` and a `purpose` tag; discards its first outputs to mix the seed. */
export const generator = (seed: number, stream: number, purpose: number): (() => number) => {
  const next = sfc32(0x9e3779b9, seed >>> 0, stream >>> 0, purpose >>> 0)
  for (let i = 0; i < 16; i++) next()
  return next
}

/** The payload of `stream`: `totalBytes` bytes in frames of 1..`frameBytesMax` bytes. */
export const streamPayload = (seed: number, stream: number, totalBytes: number, frameBytesMax: number): StreamPayload => {
  const bytes = new Uint8Array(totalBytes)
  const view = new DataView(bytes.buffer)
  const data = generator(seed, stream, 1)
  let offset = 0
  for (; offset + 4 <= totalBytes; offset += 4) view.setUint32(offset, data())
  for (; offset < totalBytes; offset++) bytes[offset] = data() & 0xff
  const sizes = generator(seed, stream, 2)
  const frameLengths: Array<number> = []
  for (let left = totalBytes; left > 0;) {
    const length = Math.min(left, 1 + (sizes() % frameBytesMax))
    frameLengths.push(length)
    left -= length
  }
  return { stream, bytes, frameLengths, sha256: createHash("sha256").update(bytes).digest("hex") }
}
