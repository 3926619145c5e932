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

/**
 * `length` uninitialised bytes from Node's buffer pool (no allocation of their own below 4 KiB), as a
 * plain Uint8Array (so `slice` copies, as everywhere else). The caller writes every byte.
 */
export const pooled = (length: number): Uint8Array => {
  const buffer = Buffer.allocUnsafe(length)
  return new Uint8Array(buffer.buffer, buffer.byteOffset, length)
}
