/**
 * The content-addressed store: an object's id is the SHA-256 of its bytes, and the bytes are the
 * object's canonical encoding (`putValue` encodes a value with `Canonical.encode` first). Every read is
 * hashed again and compared with its id; a mismatch is `StoreError("Corrupt")` and a counter, never data.
 *
 * Objects live until `gc()` removes the unpinned ones. Pins are counts, so independent holders pin the
 * same object and each releases its own pin; `unpin` of an object with no pin is a no-op (a release
 * may run after a gc, or twice). Nothing is evicted on its own: a put past `storeBytesMax` or
 * `storeObjectsMax` fails with `StoreError("Full")` and the caller decides whether to gc.
 *
 * ```ts
 * const StoreLive = Store.layerLmdb("./data/store")     // or Store.layerMemory; both need Limits
 * const id = yield* store.put(bytes, { pin: true })     // put and pin in one transaction
 * const back = yield* store.get(id)                     // Option<Uint8Array>, re-hashed
 * ```
 */
import type { Brand } from "effect"
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { CodecError } from "./WeftError.js"
import { StoreError } from "./WeftError.js"
import type * as Limits from "./Limits.js"
import * as Backend from "./internal/storeBackend.js"
import { make, sha256 } from "./internal/storeCore.js"
import { lmdb } from "./internal/storeLmdb.js"

/** Bytes in an id (SHA-256). */
export const idBytes = 32

/** An object's id: the SHA-256 of its bytes. */
export type Id = Uint8Array & Brand.Brand<"@weft/core/Store/Id">

/** An id on the wire: exactly 32 bytes. */
export const Id: Schema.Schema<Id, Uint8Array> = Schema.Uint8ArrayFromSelf.pipe(
  Schema.filter((bytes) => bytes.length === idBytes, { message: () => `an id is ${idBytes} bytes` }),
  Schema.brand("@weft/core/Store/Id")
)

/** The id of `bytes` (what `put` returns for them). */
export const idOf = (bytes: Uint8Array): Id => sha256(bytes) as Id

/** An id as lowercase hex, for logs and tools. */
export const toHex = (id: Id): string => Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex")

/** An id from 64 hex digits, or none. */
export const fromHex = (text: string): Option.Option<Id> =>
  /^[0-9a-fA-F]{64}$/.test(text) ? Option.some(new Uint8Array(Buffer.from(text, "hex")) as Id) : Option.none()

/** Options of a put. */
export interface PutOptions {
  /** Also add one pin to each object put, in the same transaction (so no gc can slip in between). */
  readonly pin?: boolean | undefined
}

/** What one `gc()` removed. */
export interface GcResult {
  readonly objectsRemoved: number
  readonly bytesRemoved: number
}

/** What the store holds and counts. */
export interface Stats {
  readonly objects: number
  readonly bytes: number
  /** Objects with at least one pin. */
  readonly pinned: number
  /** Reads whose bytes did not hash to their id (refused with "Corrupt"). */
  readonly corruptReads: number
  /** Puts refused as TooLarge or Full. */
  readonly putsRefused: number
  readonly gcRuns: number
}

/** The store's operations; none has requirements. */
export interface Service {
  /** Stores `bytes` (idempotent) and returns their id; TooLarge past `storeObjectBytesMax`, Full past the store's bounds. */
  readonly put: (bytes: Uint8Array, options?: PutOptions) => Effect.Effect<Id, StoreError>
  /** Encodes `value` with `Canonical.encode` and stores the bytes. */
  readonly putValue: (value: unknown, options?: PutOptions) => Effect.Effect<Id, StoreError | CodecError>
  /** Stores every object in one transaction: all or (on any error) none. Ids in the order given. */
  readonly putAll: (list: ReadonlyArray<Uint8Array>, options?: PutOptions) => Effect.Effect<ReadonlyArray<Id>, StoreError>
  /** The object's bytes, checked against its id; Corrupt (and counted) if they do not match. */
  readonly get: (id: Id) => Effect.Effect<Option.Option<Uint8Array>, StoreError>
  readonly has: (id: Id) => Effect.Effect<boolean, StoreError>
  /** The object's pin count (0 when unpinned or absent). */
  readonly pinCount: (id: Id) => Effect.Effect<number, StoreError>
  /** Adds a pin and returns the new count; NotFound if the store does not hold the object. */
  readonly pin: (id: Id) => Effect.Effect<number, StoreError>
  /** Releases a pin and returns the new count; a no-op returning 0 when the object has no pin. */
  readonly unpin: (id: Id) => Effect.Effect<number, StoreError>
  /** Removes every unpinned object, in one transaction. */
  readonly gc: Effect.Effect<GcResult, StoreError>
  readonly stats: Effect.Effect<Stats>
}

/** The content store. */
export class Store extends Context.Tag("@weft/core/Store")<Store, Service>() {}

/** A store in memory (lost with its scope): for tests and nodes that keep nothing. */
export const layerMemory: Layer.Layer<Store, never, Limits.Limits> = Layer.scoped(
  Store,
  Effect.orDie(make(Backend.memory))
)

/**
 * The embedded default: an lmdb environment in `dir` (created if needed), closed with the scope. Each
 * logical write (put, putAll, pin, unpin, gc) is one ACID transaction, durable when it returns.
 * Opening counts what the directory holds (one pass over the keys). Fails with `StoreError("Backend")`
 * if lmdb cannot open the directory.
 */
export const layerLmdb = (dir: string): Layer.Layer<Store, StoreError, Limits.Limits> =>
  Layer.scoped(Store, make(() => lmdb(dir)))

/** Fails with `StoreError("NotFound")` for an absent object: for callers that need the bytes. */
export const getOrFail = (store: Service, id: Id): Effect.Effect<Uint8Array, StoreError> =>
  Effect.flatMap(store.get(id), Option.match({
    onNone: () => Effect.fail(new StoreError({ reason: "NotFound", detail: `no object ${toHex(id).slice(0, 16)}` })),
    onSome: Effect.succeed
  }))
