/**
 * Benchmarks of the ephemeral package, each against a same-run baseline (core's bench harness):
 *
 * - validation (decode, TTL/block/algorithm/seen checks, the work digest, the proof hash, the seen-set
 *   insert) against one raw SHA-256 of the same encoded bytes, at a 256-byte payload and at the channel
 *   size class (4608 bytes); target ≥ 0.5×;
 * - proof-of-work attempts against raw SHA-256 of the 40 bytes one attempt hashes;
 * - store inserts at capacity (every insert evicts the message with the least work per byte) against a
 *   plain insertion-ordered Map doing insert + delete-oldest.
 *
 * `cases(quick)` is what `npm run bench` runs; alone: `npx tsx packages/ephemeral/bench/ephemeral.ts [--json] [--quick] [--reps N] [--only TEXT]`.
 */
import { Effect } from "effect"
import { hash } from "node:crypto"
import { pathToFileURL } from "node:url"
import type { Case } from "../../core/bench/harness.js"
import { parseOptions, report, runCase } from "../../core/bench/harness.js"
import * as Channel from "../src/Channel.js"
import { Store } from "../src/EphemeralStore.js"
import * as MessageModule from "../src/Message.js"
import * as Pow from "../src/Pow.js"
import { Validator } from "../src/Validate.js"

const nowMs = 1_700_000_000_000
const blockHash = Uint8Array.of(0xde, 0xad, 0xbe, 0xef)
// One bit of work: building the pool is quick, and verifying costs the same whatever the bits.
const algorithm = Pow.sha256({ workBitsMin: 1, ttlFactor: 0, sizeFactor: 0 })

const idOf = (index: number, salt: number): Uint8Array => {
  const id = new Uint8Array(MessageModule.idBytes)
  const view = new DataView(id.buffer)
  view.setUint32(0, Math.imul(index + 1, 0x9e37_79b1) >>> 0)
  view.setUint32(4, salt)
  view.setUint32(8, index)
  return id
}

/** `count` distinct valid messages with `payloadBytes` of payload, encoded. */
const pool = (count: number, payloadBytes: number): Effect.Effect<ReadonlyArray<Uint8Array>> =>
  Effect.forEach(Array.from({ length: count }, (_, index) => index), (index) =>
    Pow.seal(algorithm, { id: idOf(index, payloadBytes), payload: new Uint8Array(payloadBytes).fill(index & 0xff), ttl: nowMs / 1000 + 600, blockHash }, nowMs).pipe(
      Effect.map((message) => Either_getOrThrow(MessageModule.encode(message))),
      Effect.orDie
    ))

const Either_getOrThrow = <A>(either: { readonly _tag: "Left" | "Right"; readonly right?: A }): A => {
  if (either._tag === "Left") throw new Error("bench: a message did not encode")
  return either.right as A
}

const validationCase = (messages: ReadonlyArray<Uint8Array>, payloadBytes: number): Case => ({
  bench: `validate message (${payloadBytes} B payload)`,
  metric: `ephemeral_validate_${payloadBytes}`,
  unit: "validations/s",
  ops: messages.length,
  target: 0.5,
  subject: {
    name: "Validator.checkBytes",
    run: (ops) =>
      Effect.sync(() => {
        // A fresh validator per run: every message is new to it (no duplicate short-cuts).
        const validator = new Validator({ algorithms: Pow.registry([algorithm]), ttlMax: "1 hour", blockDepth: 64, seenEntriesMax: messages.length, rejectPeersMax: 16 })
        validator.setRecentBlockHashes([blockHash])
        for (let index = 0; index < ops; index++) {
          if (!validator.checkBytes(messages[index % messages.length]!, nowMs).ok) throw new Error("bench: a valid message was rejected")
        }
      })
  },
  baseline: {
    name: "raw SHA-256 of the message",
    run: (ops) => Effect.sync(() => { for (let index = 0; index < ops; index++) hash("sha256", messages[index % messages.length]!, "buffer") })
  }
})

const powCase = (quick: boolean): Case => {
  const digest = new Uint8Array(32).fill(7)
  const input = new Uint8Array(40).fill(7)
  let start = 0
  return {
    bench: "proof-of-work attempts (sha256)",
    metric: "ephemeral_pow_attempts",
    unit: "attempts/s",
    ops: quick ? 50_000 : 500_000,
    subject: {
      name: "Pow.sha256 attempt",
      // 256 bits are never reached: every attempt runs.
      run: (ops) => Effect.sync(() => void algorithm.attempt(digest, Pow.bitsMax, (start += ops), ops))
    },
    baseline: {
      name: "raw SHA-256 of 40 bytes",
      run: (ops) => Effect.sync(() => { for (let index = 0; index < ops; index++) hash("sha256", input, "buffer") })
    }
  }
}

const storeCase = (quick: boolean): Case => {
  const capacity = quick ? 10_000 : 50_000
  const template = Either_getOrThrow(MessageModule.encode({ id: new Uint8Array(64), payload: new Uint8Array(256).fill(3), ttl: nowMs / 1000 + 600, blockHash, algorithm: 1, proof: new Uint8Array(8) }))
  const store = new Store({ storeMessagesMax: capacity, storeBytesMax: 1024 * 1024 * 1024, storeEntryOverheadBytes: 256, lookupResultsMax: 256 })
  let next = 0
  const fresh = (): Uint8Array => {
    const bytes = template.slice()
    const view = new DataView(bytes.buffer)
    view.setUint32(2, Math.imul(next + 1, 0x9e37_79b1) >>> 0)
    view.setUint32(6, next++)
    return bytes
  }
  // Each insert shows a little more work than the last: at capacity, each one evicts the cheapest.
  const insert = () => store.insert(fresh(), 8 + next / 1e7, nowMs)
  for (let index = 0; index < capacity; index++) insert()
  const map = new Map<string, Uint8Array>()
  let mapNext = 0
  return {
    bench: `store insert at capacity (${capacity} messages, evicts 1 each)`,
    metric: "ephemeral_store_insert_evict",
    unit: "inserts/s",
    ops: quick ? 20_000 : 100_000,
    subject: {
      name: "EphemeralStore insert",
      run: (ops) => Effect.sync(() => { for (let index = 0; index < ops; index++) if (insert() !== "Stored") throw new Error("bench: an insert was refused") })
    },
    baseline: {
      name: "Map set + delete oldest",
      run: (ops) =>
        Effect.sync(() => {
          for (let index = 0; index < ops; index++) {
            const bytes = fresh()
            map.set(MessageModule.idKey(bytes.subarray(2, 66)), bytes.slice())
            mapNext++
            if (map.size > capacity) map.delete(map.keys().next().value!)
          }
        })
    }
  }
}

/** The ephemeral cases of `npm run bench`. */
export const cases = (quick: boolean): Effect.Effect<ReadonlyArray<Case>> =>
  Effect.gen(function*() {
    const count = quick ? 2000 : 10_000
    const small = yield* pool(count, 256)
    const channel = yield* pool(count, Channel.sizeClassBytes)
    return [validationCase(small, 256), validationCase(channel, Channel.sizeClassBytes), powCase(quick), storeCase(quick)]
  })

const usage = "usage: npx tsx packages/ephemeral/bench/ephemeral.ts [--json] [--reps N] [--quick] [--only TEXT]"

const main = async (): Promise<void> => {
  const options = parseOptions(process.argv.slice(2), usage)
  const selected = Effect.map(cases(options.quick), (all) => all.filter((spec) => options.only === undefined || spec.bench.includes(options.only)))
  const results = await Effect.runPromise(Effect.flatMap(selected, (chosen) => Effect.forEach(chosen, (spec) => runCase(spec, options.reps))))
  report(results, options.json)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
    process.exit(1)
  })
}
