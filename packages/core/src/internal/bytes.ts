/** Small byte-string helpers shared by the links. */

/** Concatenates byte strings. */
export const concat = (parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  let length = 0
  for (const part of parts) length += part.length
  const out = new Uint8Array(length)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/** Byte-wise equality (not constant time: for public values and MACs of public values only). */
export const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => {
  if (a.length !== b.length) return false
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false
  return true
}

// Cells are carved from slabs of their own rather than from Node's shared buffer pool: a cell lives
// only until the transport has sent it, so a slab is soon free, and no long-lived small Buffer made
// elsewhere (which Node's pool would put next to our cells) pins a slab per session.
const slabBytes = 16 * 1024
let slab = new ArrayBuffer(0)
let slabUsed = 0

/**
 * `length` uninitialised bytes carved from a shared slab (no allocation of their own), as a plain
 * Uint8Array (so `slice` copies, as everywhere else). For short-lived buffers of at most 2 KiB, such
 * as cells on their way to the transport; the caller writes every byte.
 */
export const pooled = (length: number): Uint8Array => {
  if (length > slabBytes / 8) return new Uint8Array(length)
  if (slabUsed + length > slab.byteLength) {
    slab = new ArrayBuffer(slabBytes)
    slabUsed = 0
  }
  const out = new Uint8Array(slab, slabUsed, length)
  slabUsed += (length + 7) & ~7
  return out
}
