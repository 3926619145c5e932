/**
 * Where a node's random bytes come from (salts, nonces, ephemeral keys). In production it is the
 * operating system's CSPRNG (node:crypto); a deterministic simulation provides a seeded stream so that
 * a run, down to the bytes on the simulated wire, replays from its seed (invariant 6).
 */
import { Context, Layer } from "effect"
import { createHash, randomBytes } from "node:crypto"

/** A source of random bytes. */
export class Entropy extends Context.Tag("@weft/core/Entropy")<Entropy, {
  readonly bytes: (length: number) => Uint8Array
}>() {}

/** The operating system's CSPRNG. */
export const layer: Layer.Layer<Entropy> = Layer.succeed(Entropy, {
  bytes: (length) => new Uint8Array(randomBytes(length))
})

/**
 * A deterministic stream: SHA-256(seed ‖ counter) blocks. For simulations and tests only — anyone who
 * knows the seed knows every key.
 */
export const layerSeeded = (seed: string): Layer.Layer<Entropy> =>
  Layer.sync(Entropy, () => {
    let counter = 0
    return {
      bytes: (length) => {
        const out = new Uint8Array(length)
        for (let offset = 0; offset < length; offset += 32) {
          const block = createHash("sha256").update(`${seed}/${counter++}`).digest()
          out.set(block.subarray(0, Math.min(32, length - offset)), offset)
        }
        return out
      }
    }
  })
