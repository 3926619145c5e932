/**
 * The content store's logic over any backend: ids are SHA-256 of the bytes, every limit is checked
 * before a transaction writes anything (so a refused write leaves no trace), and every read is hashed
 * again and compared with its id (the paired check) before a byte of it is returned.
 */
import { Effect, Option } from "effect"
import { hash } from "node:crypto"
import type { Scope } from "effect"
import { encode } from "../Canonical.js"
import * as Limits from "../Limits.js"
import type { GcResult, Id, PutOptions, Service, Stats } from "../Store.js"
import { StoreError } from "../WeftError.js"
import type { Backend, Totals, Transaction } from "./storeBackend.js"
import { equalBytes } from "./bytes.js"

/**
 * SHA-256, as `Canonical.digest`, through node's one-shot `crypto.hash` (about twice as fast for small
 * objects: every get pays it once). Node ≥ 20.12.
 */
export const sha256 = (bytes: Uint8Array): Uint8Array => {
  const digest = hash("sha256", bytes, "buffer")
  // A plain Uint8Array view, so ids compare equal to ids made anywhere else.
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength)
}

const backendError = (what: string, cause: unknown) =>
  new StoreError({ reason: "Backend", detail: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` })

const attempt = <A>(what: string, run: () => A): Effect.Effect<A, StoreError> =>
  Effect.try({ try: run, catch: (cause) => backendError(what, cause) })

const hex = (id: Uint8Array): string => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex")

/** What one committed write changed. */
interface Delta {
  readonly objects: number
  readonly bytes: number
  readonly pinned: number
}

interface PinChange {
  readonly id: Id
  readonly before: number
  after: number
}

/** The new pin count of every distinct id, one pin per occurrence; Full past `pinsMax`. */
const planPins = (transaction: Transaction, ids: ReadonlyArray<Id>, pinsMax: number): Map<string, PinChange> | StoreError => {
  const changes = new Map<string, PinChange>()
  for (const id of ids) {
    const key = hex(id)
    let change = changes.get(key)
    if (change === undefined) {
      const before = transaction.pinCount(id)
      change = { id, before, after: before }
      changes.set(key, change)
    }
    if (change.after >= pinsMax) return new StoreError({ reason: "Full", detail: `object ${key.slice(0, 16)} already has ${pinsMax} pins (storePinsPerObjectMax)` })
    change.after++
  }
  return changes
}

/** Plans a put of `list` (already hashed), checks every limit, then writes; returns what changed or why not. */
const writeObjects = (
  transaction: Transaction,
  totals: Totals,
  limits: Limits.Values,
  ids: ReadonlyArray<Id>,
  list: ReadonlyArray<Uint8Array>,
  pin: boolean
): Delta | StoreError => {
  const fresh = new Map<string, number>()
  let bytes = 0
  ids.forEach((id, index) => {
    const key = hex(id)
    if (fresh.has(key) || transaction.exists(id)) return
    fresh.set(key, index)
    bytes += list[index]!.length
  })
  if (totals.objects + fresh.size > limits.storeObjectsMax) {
    return new StoreError({ reason: "Full", detail: `the store holds ${totals.objects} objects (storeObjectsMax ${limits.storeObjectsMax}); gc() frees unpinned ones` })
  }
  if (totals.bytes + bytes > limits.storeBytesMax) {
    return new StoreError({ reason: "Full", detail: `${bytes} more bytes would pass storeBytesMax (${limits.storeBytesMax}, ${totals.bytes} used); gc() frees unpinned ones` })
  }
  const pins = pin ? planPins(transaction, ids, limits.storePinsPerObjectMax) : new Map<string, PinChange>()
  if (pins instanceof StoreError) return pins
  for (const index of fresh.values()) transaction.put(ids[index]!, list[index]!)
  let pinned = 0
  for (const change of pins.values()) {
    if (change.before === 0) pinned++
    transaction.setPinCount(change.id, change.after)
  }
  return { objects: fresh.size, bytes, pinned }
}

const short = (id: Id) => hex(id).slice(0, 16)

/** Adds one pin inside a transaction; returns the new count or why not. */
const addPin = (transaction: Transaction, id: Id, pinsMax: number): number | StoreError => {
  if (!transaction.exists(id)) return new StoreError({ reason: "NotFound", detail: `no object ${short(id)} to pin` })
  const count = transaction.pinCount(id)
  if (count >= pinsMax) return new StoreError({ reason: "Full", detail: `object ${short(id)} has ${count} pins (storePinsPerObjectMax)` })
  transaction.setPinCount(id, count + 1)
  return count + 1
}

/** Releases one pin inside a transaction, if there is one; returns the count before. */
const releasePin = (transaction: Transaction, id: Id): number => {
  const count = transaction.pinCount(id)
  if (count > 0) transaction.setPinCount(id, count - 1)
  return count
}

/** What the store counts besides its totals. */
interface Counters {
  corruptReads: number
  putsRefused: number
  gcRuns: number
}

/** The hot read path: one suspend, no combinators; the paired check before any byte is returned. */
const makeGet = (backend: Backend, counters: Counters) => (id: Id): Effect.Effect<Option.Option<Uint8Array>, StoreError> =>
  Effect.suspend(() => {
    let bytes: Uint8Array | undefined
    try {
      bytes = backend.read(id)
    } catch (cause) {
      return Effect.fail(backendError("get", cause))
    }
    if (bytes === undefined) return Effect.succeedNone
    if (equalBytes(sha256(bytes), id)) return Effect.succeedSome(bytes)
    counters.corruptReads++
    return Effect.fail(new StoreError({ reason: "Corrupt", detail: `object ${short(id)}: stored bytes do not hash to their id` }))
  })

/** Builds the store over the backend `open` returns, closing it with the scope. */
export const make = (open: () => Backend): Effect.Effect<Service, StoreError, Limits.Limits | Scope.Scope> =>
  Effect.gen(function*() {
    const limits = yield* Limits.Limits
    const backend = yield* Effect.acquireRelease(
      attempt("open", open),
      (backend) => Effect.tryPromise(() => backend.close()).pipe(Effect.ignoreLogged)
    )
    const totals = yield* attempt("scan", backend.scan)
    const counters: Counters = { corruptReads: 0, putsRefused: 0, gcRuns: 0 }

    const apply = (delta: Delta) => {
      totals.objects += delta.objects
      totals.bytes += delta.bytes
      totals.pinned += delta.pinned
    }

    const refuse = (error: StoreError) => {
      counters.putsRefused++
      return Effect.fail(error)
    }

    const putAll = (list: ReadonlyArray<Uint8Array>, options?: PutOptions): Effect.Effect<ReadonlyArray<Id>, StoreError> =>
      Effect.suspend(() => {
        const large = list.findIndex((bytes) => bytes.length > limits.storeObjectBytesMax)
        if (large >= 0) {
          return refuse(new StoreError({ reason: "TooLarge", detail: `object of ${list[large]!.length} bytes, at most ${limits.storeObjectBytesMax} (storeObjectBytesMax)` }))
        }
        const ids = list.map((bytes) => sha256(bytes) as Id)
        return attempt("put", () => backend.transaction((transaction) => writeObjects(transaction, totals, limits, ids, list, options?.pin === true))).pipe(
          Effect.flatMap((result) => {
            if (result instanceof StoreError) return refuse(result)
            apply(result)
            return Effect.succeed(ids)
          })
        )
      })

    const pin = (id: Id): Effect.Effect<number, StoreError> =>
      Effect.flatMap(attempt("pin", () => backend.transaction((transaction) => addPin(transaction, id, limits.storePinsPerObjectMax))), (result) => {
        if (result instanceof StoreError) return Effect.fail(result)
        if (result === 1) totals.pinned++
        return Effect.succeed(result)
      })

    // Unpinning what holds no pin changes nothing: a holder's release may run after a gc or twice.
    const unpin = (id: Id): Effect.Effect<number, StoreError> =>
      Effect.map(attempt("unpin", () => backend.transaction((transaction) => releasePin(transaction, id))), (before) => {
        if (before === 1) totals.pinned--
        return Math.max(0, before - 1)
      })

    const gc: Effect.Effect<GcResult, StoreError> = Effect.map(
      attempt("gc", () => backend.transaction((transaction) => transaction.removeUnpinned())),
      (removed) => {
        counters.gcRuns++
        apply({ objects: -removed.objects, bytes: -removed.bytes, pinned: 0 })
        return { objectsRemoved: removed.objects, bytesRemoved: removed.bytes }
      }
    )

    const put = (bytes: Uint8Array, options?: PutOptions) => Effect.map(putAll([bytes], options), (ids) => ids[0]!)

    return {
      put,
      putValue: (value, options) => Effect.flatMap(Effect.suspend(() => encode(value)), (bytes) => put(bytes, options)),
      putAll,
      get: makeGet(backend, counters),
      has: (id) => attempt("has", () => backend.exists(id)),
      pinCount: (id) => attempt("pinCount", () => backend.pinCount(id)),
      pin,
      unpin,
      gc,
      stats: Effect.sync((): Stats => ({ ...totals, ...counters }))
    } satisfies Service
  })
