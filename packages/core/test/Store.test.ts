import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Either, FastCheck as fc, Layer, Option } from "effect"
import type { Scope } from "effect"
import { open } from "lmdb"
import { createHash } from "node:crypto"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Canonical from "../src/Canonical.js"
import * as Limits from "../src/Limits.js"
import * as Store from "../src/Store.js"
import * as StoreBackend from "../src/internal/storeBackend.js"
import * as StoreCore from "../src/internal/storeCore.js"
import * as StoreLmdb from "../src/internal/storeLmdb.js"
import type { StoreError } from "../src/WeftError.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "weft-store-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

type Overrides = Partial<Limits.Values>

/** One backend as the suite sees it. */
interface Fixture {
  /** The public layer. */
  readonly layer: (limits?: Overrides) => Layer.Layer<Store.Store, StoreError>
  /** The same store built over a backend the test can write garbage into. */
  readonly corruptible: () => { readonly layer: Layer.Layer<Store.Store, StoreError>; readonly corrupt: (id: Store.Id, bytes: Uint8Array) => void }
}

const withLimits = (layer: Layer.Layer<Store.Store, StoreError, Limits.Limits>, limits: Overrides = {}) =>
  layer.pipe(Layer.provide(Limits.layer(limits)))

const overBackend = (backend: () => StoreBackend.Backend) => {
  let opened: StoreBackend.Backend | undefined
  return {
    layer: withLimits(Layer.scoped(Store.Store, StoreCore.make(() => (opened = backend())))),
    corrupt: (id: Store.Id, bytes: Uint8Array) => opened!.writeUnchecked(id, bytes)
  }
}

const backends: ReadonlyArray<readonly [string, Effect.Effect<Fixture, never, Scope.Scope>]> = [
  ["memory", Effect.succeed({
    layer: (limits) => withLimits(Store.layerMemory, limits),
    corruptible: () => overBackend(StoreBackend.memory)
  })],
  ["lmdb", Effect.map(tempDir, (dir) => ({
    layer: (limits) => withLimits(Store.layerLmdb(dir), limits),
    corruptible: () => overBackend(() => StoreLmdb.lmdb(Path.join(dir, "corruptible")))
  }))]
]

const storeOf = (layer: Layer.Layer<Store.Store, StoreError>) => Effect.map(Layer.build(layer), Context.get(Store.Store))

const sha256 = (bytes: Uint8Array) => new Uint8Array(createHash("sha256").update(bytes).digest())

const bytesOf = (length: number, fill: number) => new Uint8Array(length).fill(fill)

const reasonOf = <A>(result: Either.Either<A, { readonly reason: string }>) => Either.isLeft(result) ? result.left.reason : "succeeded"

backends.forEach(([name, fixture]) => {
  describe(`Store (${name})`, () => {
    it.scoped("put then get returns the same bytes, under id = SHA-256 of them (property)", () =>
      Effect.gen(function*() {
        const store = yield* storeOf((yield* fixture).layer())
        const check = (bytes: Uint8Array) =>
          Effect.gen(function*() {
            const id = yield* store.put(bytes)
            assert.deepStrictEqual([...id], [...sha256(bytes)])
            assert.deepStrictEqual(Store.idOf(bytes), id)
            const back = yield* store.get(id)
            assert.isTrue(Option.isSome(back))
            assert.deepStrictEqual([...Option.getOrThrow(back)], [...bytes])
            assert.isTrue(yield* store.has(id))
            const before = yield* store.stats
            assert.deepStrictEqual(yield* store.put(bytes), id, "a second put is the same object")
            assert.strictEqual((yield* store.stats).objects, before.objects)
          })
        yield* Effect.promise(() =>
          fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), (bytes) => Effect.runPromise(check(bytes))), { numRuns: 60 })
        )
      }))

    it.scoped("an absent id reads as none; putValue stores the canonical encoding; hex ids round-trip", () =>
      Effect.gen(function*() {
        const store = yield* storeOf((yield* fixture).layer())
        const absent = Store.idOf(Uint8Array.of(1, 2, 3))
        assert.isTrue(Option.isNone(yield* store.get(absent)))
        assert.isFalse(yield* store.has(absent))
        const value = { b: [1, 2n ** 60n], a: "text" }
        const id = yield* store.putValue(value)
        const canonical = Either.getOrThrow(Canonical.encode(value))
        assert.deepStrictEqual(id, Store.idOf(canonical))
        assert.deepStrictEqual(Either.getOrThrow(Canonical.decode(Option.getOrThrow(yield* store.get(id)), 1024)), value)
        const float = yield* Effect.either(store.putValue({ x: 1.5 }))
        assert.strictEqual(Either.isLeft(float) && float.left._tag, "CodecError")
        assert.deepStrictEqual(Store.fromHex(Store.toHex(id)), Option.some(id))
        assert.isTrue(Option.isNone(Store.fromHex("zz")))
        assert.strictEqual(Store.toHex(id).length, 64)
      }))

    it.scoped("pins are counts; gc removes exactly the unpinned objects; unpin of an unpinned object is a no-op", () =>
      Effect.gen(function*() {
        const store = yield* storeOf((yield* fixture).layer())
        const [a, b, c] = [bytesOf(10, 1), bytesOf(20, 2), bytesOf(30, 3)]
        const [idA, idB, idC] = yield* store.putAll([a, b, c])
        assert.strictEqual(yield* store.pin(idA!), 1)
        assert.strictEqual(yield* store.pin(idA!), 2, "a second holder")
        assert.strictEqual(yield* store.pin(idB!), 1)
        assert.deepStrictEqual(yield* store.stats, { objects: 3, bytes: 60, pinned: 2, corruptReads: 0, putsRefused: 0, gcRuns: 0 })
        assert.deepStrictEqual(yield* store.gc, { objectsRemoved: 1, bytesRemoved: 30 })
        assert.isFalse(yield* store.has(idC!))
        assert.strictEqual(yield* store.unpin(idA!), 1)
        assert.deepStrictEqual(yield* store.gc, { objectsRemoved: 0, bytesRemoved: 0 }, "the other holder still pins A")
        assert.strictEqual(yield* store.unpin(idA!), 0)
        assert.strictEqual(yield* store.unpin(idA!), 0, "no-op")
        assert.strictEqual(yield* store.unpin(idC!), 0, "no-op on an absent object")
        assert.deepStrictEqual(yield* store.gc, { objectsRemoved: 1, bytesRemoved: 10 })
        assert.isTrue(yield* store.has(idB!))
        assert.deepStrictEqual(yield* store.stats, { objects: 1, bytes: 20, pinned: 1, corruptReads: 0, putsRefused: 0, gcRuns: 3 })
        assert.strictEqual(reasonOf(yield* Effect.either(store.pin(idA!))), "NotFound")
      }))

    it.scoped("put with pin pins in the same write, once per occurrence", () =>
      Effect.gen(function*() {
        const store = yield* storeOf((yield* fixture).layer())
        const a = bytesOf(5, 7)
        const [id] = yield* store.putAll([a, a, bytesOf(6, 8)], { pin: true })
        assert.strictEqual(yield* store.pinCount(id!), 2)
        assert.strictEqual((yield* store.stats).pinned, 2)
        assert.strictEqual((yield* store.stats).objects, 2)
        yield* store.put(a, { pin: true })
        assert.strictEqual(yield* store.pinCount(id!), 3)
        assert.deepStrictEqual(yield* store.gc, { objectsRemoved: 0, bytesRemoved: 0 })
      }))

    it.scoped("storeObjectBytesMax: at the bound is stored, one byte more is TooLarge, and putAll writes nothing", () =>
      Effect.gen(function*() {
        const store = yield* storeOf((yield* fixture).layer({ storeObjectBytesMax: 100 }))
        yield* store.put(bytesOf(100, 1))
        const small = bytesOf(3, 2)
        const result = yield* Effect.either(store.putAll([small, bytesOf(101, 1)]))
        assert.strictEqual(reasonOf(result), "TooLarge")
        assert.isFalse(yield* store.has(Store.idOf(small)), "nothing of the batch was written")
        assert.deepStrictEqual(yield* store.stats, { objects: 1, bytes: 100, pinned: 0, corruptReads: 0, putsRefused: 1, gcRuns: 0 })
      }))

    it.scoped("storeBytesMax: Full past it with nothing written; gc frees unpinned room; pinned data is never evicted", () =>
      Effect.gen(function*() {
        const store = yield* storeOf((yield* fixture).layer({ storeBytesMax: 100 }))
        const pinned = yield* store.put(bytesOf(60, 1), { pin: true })
        const loose = yield* store.put(bytesOf(40, 2))
        const next = bytesOf(30, 3)
        const full = yield* Effect.either(store.putAll([bytesOf(1, 9), next]))
        assert.strictEqual(reasonOf(full), "Full")
        assert.isFalse(yield* store.has(Store.idOf(bytesOf(1, 9))), "the batch wrote nothing")
        assert.strictEqual((yield* store.stats).bytes, 100)
        yield* store.gc
        assert.isFalse(yield* store.has(loose))
        yield* store.put(next)
        assert.strictEqual(reasonOf(yield* Effect.either(store.put(bytesOf(11, 4)))), "Full", "60 pinned + 30 + 11 > 100")
        yield* store.gc
        assert.strictEqual(reasonOf(yield* Effect.either(store.put(bytesOf(41, 5)))), "Full", "the pinned 60 bytes stay")
        assert.isTrue(yield* store.has(pinned))
        assert.strictEqual((yield* store.stats).putsRefused, 3)
      }))

    it.scoped("storeObjectsMax and storePinsPerObjectMax refuse with Full", () =>
      Effect.gen(function*() {
        const store = yield* storeOf((yield* fixture).layer({ storeObjectsMax: 2, storePinsPerObjectMax: 2 }))
        const [id] = yield* store.putAll([bytesOf(1, 1), bytesOf(1, 2)])
        assert.strictEqual(reasonOf(yield* Effect.either(store.put(bytesOf(1, 3)))), "Full")
        yield* store.put(bytesOf(1, 1)) // an object already held takes no room
        yield* store.pin(id!)
        yield* store.pin(id!)
        assert.strictEqual(reasonOf(yield* Effect.either(store.pin(id!))), "Full")
        assert.strictEqual(reasonOf(yield* Effect.either(store.put(bytesOf(1, 1), { pin: true }))), "Full")
        assert.strictEqual(yield* store.pinCount(id!), 2)
      }))

    it.scoped("a stored value that no longer hashes to its id is Corrupt and counted, never returned", () =>
      Effect.gen(function*() {
        const { corrupt, layer } = (yield* fixture).corruptible()
        const store = yield* storeOf(layer)
        const id = yield* store.put(bytesOf(64, 1))
        corrupt(id, bytesOf(64, 2))
        const result = yield* Effect.either(store.get(id))
        assert.strictEqual(reasonOf(result), "Corrupt")
        assert.strictEqual((yield* store.stats).corruptReads, 1)
        assert.isTrue(yield* store.has(id), "has does not read the bytes")
      }))
  })
})

describe("Store (lmdb on disk)", () => {
  it.scoped("objects, bytes and pins persist across a reopen", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const layer = withLimits(Store.layerLmdb(dir))
      const [kept, loose] = [bytesOf(100, 1), bytesOf(50, 2)]
      yield* Effect.scoped(Effect.gen(function*() {
        const store = yield* storeOf(layer)
        yield* store.put(kept, { pin: true })
        yield* store.pin(Store.idOf(kept))
        yield* store.put(loose)
      }))
      const store = yield* storeOf(layer)
      assert.deepStrictEqual(yield* store.stats, { objects: 2, bytes: 150, pinned: 1, corruptReads: 0, putsRefused: 0, gcRuns: 0 })
      assert.deepStrictEqual([...Option.getOrThrow(yield* store.get(Store.idOf(kept)))], [...kept])
      assert.strictEqual(yield* store.pinCount(Store.idOf(kept)), 2)
      assert.deepStrictEqual(yield* store.gc, { objectsRemoved: 1, bytesRemoved: 50 })
    }))

  it.scoped("garbage written into the lmdb file with raw lmdb is refused as Corrupt after reopening", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const layer = withLimits(Store.layerLmdb(dir))
      const id = yield* Effect.scoped(Effect.flatMap(storeOf(layer), (store) => store.put(bytesOf(200, 1))))
      yield* Effect.promise(async () => {
        const root = open({ path: dir, maxDbs: 2 })
        const objects = root.openDB({ name: StoreLmdb.objectsName, encoding: "binary", keyEncoding: "binary" })
        objects.putSync(id, bytesOf(200, 0xee))
        await root.close()
      })
      const store = yield* storeOf(layer)
      assert.strictEqual(reasonOf(yield* Effect.either(store.get(id))), "Corrupt")
      assert.strictEqual(reasonOf(yield* Effect.either(Store.getOrFail(store, id))), "Corrupt")
      assert.strictEqual((yield* store.stats).corruptReads, 2)
    }))

  it.scoped("a directory lmdb cannot open fails the layer with StoreError(Backend)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = Path.join(dir, "not-a-dir")
      Fs.writeFileSync(file, "x")
      const result = yield* Effect.either(storeOf(withLimits(Store.layerLmdb(Path.join(file, "store")))))
      assert.strictEqual(reasonOf(result), "Backend")
    }))
})
