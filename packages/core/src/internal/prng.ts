/**
 * A small seeded pseudo-random generator (xoshiro128**, seeded through splitmix32) for the simulator.
 *
 * The simulator draws per cell, so this stays synchronous and allocation-free; its whole state is
 * four 32-bit words, so a run can be snapshotted and resumed exactly. Not for cryptography.
 */

/** The complete generator state: four unsigned 32-bit words, never all zero. */
export type State = readonly [number, number, number, number]

/** A generator. Each call advances the state; the same seed yields the same sequence everywhere. */
export interface Prng {
  /** A uniform unsigned 32-bit integer. */
  readonly nextUint32: () => number
  /** A uniform float in [0, 1) with 32 bits of resolution. */
  readonly nextFloat: () => number
  /** A uniform integer in [min, max] (both inclusive; integers with max - min < 2^32). */
  readonly nextInt: (min: number, max: number) => number
  /** A copy of the current state, for `fromState`. */
  readonly state: () => State
}

const TWO_POW_32 = 4294967296

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k))

/** Expands a 32-bit seed into well-mixed words (splitmix32), so nearby seeds give unrelated streams. */
const splitmix32 = (seed: number): () => number => {
  let s = seed >>> 0
  return () => {
    s = (s + 0x9e3779b9) | 0
    let z = s
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
}

/** A generator that continues from `state` exactly. */
export const fromState = (state: State): Prng => {
  let [s0, s1, s2, s3] = state
  if ((s0 | s1 | s2 | s3) === 0) s3 = 1 // the all-zero state is a fixed point of xoshiro
  const nextUint32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0
    const t = s1 << 9
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = rotl(s3, 11)
    return result
  }
  const nextFloat = (): number => nextUint32() / TWO_POW_32
  return {
    nextUint32,
    nextFloat,
    nextInt: (min, max) => min + Math.floor(nextFloat() * (max - min + 1)),
    state: () => [s0 >>> 0, s1 >>> 0, s2 >>> 0, s3 >>> 0]
  }
}

/** A generator seeded with `seed` (any number; only its low 32 bits are used). */
export const make = (seed: number): Prng => {
  const mix = splitmix32(seed)
  return fromState([mix(), mix(), mix(), mix()])
}
