import { assert, describe, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as fragment from "../src/internal/fragment.js"

// Small cells so that frames span many of them and the u16 fields get exercised.
const cellBytes = 64
const room = fragment.payloadBytes(cellBytes)
const frameBytesMax = 2000
const countMax = Math.ceil(frameBytesMax / room)

const options: fragment.ReassemblerOptions = {
  cellBytes,
  frameBytesMax,
  partialsPerAddressMax: 4,
  addressesMax: 3,
  timeoutMs: 1000
}

const bufferedBound = options.addressesMax * options.partialsPerAddressMax * frameBytesMax

const header = (id: number, index: number, count: number, length: number): Uint8Array => {
  const cell = new Uint8Array(cellBytes)
  const view = new DataView(cell.buffer)
  view.setUint32(0, id)
  view.setUint16(4, index)
  view.setUint16(6, count)
  view.setUint16(8, length)
  return cell
}

const assertBounded = (reassembler: fragment.Reassembler) => {
  const size = reassembler.size()
  assert.isAtMost(size.addresses, options.addressesMax)
  assert.isAtMost(size.partials, options.addressesMax * options.partialsPerAddressMax)
  assert.isAtMost(size.bufferedBytes, bufferedBound)
  assert.isAtLeast(size.bufferedBytes, 0)
}

describe("fragment", () => {
  it("cuts a frame into cells of exactly cellBytes with zero padding", () => {
    const frame = Uint8Array.from({ length: room * 2 + 5 }, (_, index) => (index % 255) + 1)
    const cells = fragment.cut(frame, 0xdeadbeef, cellBytes)
    assert.strictEqual(cells.length, 3)
    assert.strictEqual(fragment.cellsFor(frame.length, cellBytes), 3)
    for (const cell of cells) assert.strictEqual(cell.length, cellBytes)
    const last = cells[2]!
    assert.deepStrictEqual(Array.from(last.subarray(0, fragment.headerBytes)), [0xde, 0xad, 0xbe, 0xef, 0, 2, 0, 3, 0, 5])
    assert.isTrue(last.subarray(fragment.headerBytes + 5).every((byte) => byte === 0))
    assert.strictEqual(fragment.cut(new Uint8Array(0), 1, cellBytes).length, 1)
  })

  it("round-trips any frame up to frameBytesMax, cells in any order with duplicates", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: frameBytesMax }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.array(fc.nat(), { maxLength: 80 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (frame, frameId, order, duplicates) => {
          const cells = fragment.cut(frame, frameId, cellBytes)
          // A permutation of the cells (driven by `order`), with some of them repeated.
          const shuffled = cells.slice()
          order.forEach((pick, index) => {
            const a = index % shuffled.length
            const b = pick % shuffled.length
            ;[shuffled[a], shuffled[b]] = [shuffled[b]!, shuffled[a]!]
          })
          for (const pick of duplicates) shuffled.splice(pick % (shuffled.length + 1), 0, cells[pick % cells.length]!)
          const reassembler = fragment.makeReassembler(options)
          const out = shuffled.flatMap((cell) => {
            const done = reassembler.accept("peer", cell, 0)
            return done === undefined ? [] : [done]
          })
          // A one-cell frame keeps no state, so each copy is delivered (frames are datagrams); a
          // multi-cell frame is delivered exactly once however its cells are repeated.
          assert.strictEqual(out.length, cells.length === 1 ? shuffled.length : 1)
          for (const done of out) assert.deepStrictEqual(done, frame)
          assert.strictEqual(reassembler.size().partials, 0)
          assert.strictEqual(reassembler.size().bufferedBytes, 0)
          assert.strictEqual(reassembler.stats().cellsRejected, 0)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("never throws and stays bounded on random cells from many addresses", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            from: fc.constantFrom("a", "b", "c", "d", "e"),
            cell: fc.oneof(
              fc.uint8Array({ minLength: cellBytes, maxLength: cellBytes }),
              fc.uint8Array({ maxLength: cellBytes * 2 }),
              // Plausible headers: small ids and counts, so partial frames really build up.
              fc.tuple(fc.nat(6), fc.nat(40), fc.nat(40), fc.nat(room + 2)).map(([id, index, count, length]) =>
                header(id, index, count, length)
              )
            ),
            atMs: fc.nat(3000)
          }),
          { maxLength: 300 }
        ),
        (inputs) => {
          const reassembler = fragment.makeReassembler(options)
          for (const { atMs, cell, from } of inputs.sort((x, y) => x.atMs - y.atMs)) {
            const frame = reassembler.accept(from, cell, atMs)
            if (frame !== undefined) assert.isAtMost(frame.length, frameBytesMax)
            assertBounded(reassembler)
          }
          reassembler.sweep(10_000)
          assert.strictEqual(reassembler.size().addresses, 0)
          assert.strictEqual(reassembler.size().bufferedBytes, 0)
        }
      ),
      { numRuns: 300 }
    )
  })

  it("never throws and stays bounded on truncated and mutated valid cells", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: frameBytesMax }),
        fc.array(fc.tuple(fc.nat(), fc.nat(cellBytes - 1), fc.integer({ min: 1, max: 255 })), { maxLength: 40 }),
        fc.array(fc.tuple(fc.nat(), fc.nat(cellBytes)), { maxLength: 5 }),
        (frame, mutations, truncations) => {
          const cells = fragment.cut(frame, 7, cellBytes).map((cell) => cell.slice())
          for (const [which, at, xor] of mutations) {
            const cell = cells[which % cells.length]!
            cell[at] = cell[at]! ^ xor
          }
          const fed: Array<Uint8Array> = cells.slice()
          for (const [which, length] of truncations) fed.push(cells[which % cells.length]!.subarray(0, length))
          const reassembler = fragment.makeReassembler(options)
          for (const cell of fed) {
            const out = reassembler.accept("peer", cell, 0)
            if (out !== undefined) assert.isAtMost(out.length, frameBytesMax)
            assertBounded(reassembler)
          }
        }
      ),
      { numRuns: 300 }
    )
  })

  it("rejects inconsistent cells before allocating, and counts them", () => {
    const reassembler = fragment.makeReassembler(options)
    const bad = [
      new Uint8Array(cellBytes - 1), // wrong size
      header(1, 0, 0, 0), // count 0
      header(1, 0, countMax + 1, room), // more cells than frameBytesMax allows
      header(1, 0xffff, 0xffff, room), // maximal claim
      header(1, 3, 3, 1), // index ≥ count
      header(1, 0, 2, room + 1), // longer than the payload room
      header(1, 0, 2, room - 1), // a short cell that is not the last
      header(1, 1, 2, 0), // an empty last cell of a multi-cell frame
      header(1, countMax - 1, countMax, room) // last cell implying a frame over frameBytesMax
    ]
    for (const cell of bad) assert.isUndefined(reassembler.accept("x", cell, 0))
    assert.strictEqual(reassembler.stats().cellsRejected, bad.length)
    assert.deepStrictEqual(reassembler.size(), { addresses: 0, partials: 0, bufferedBytes: 0 })
  })

  it("rejects a cell whose count disagrees with its frame's", () => {
    const reassembler = fragment.makeReassembler(options)
    assert.isUndefined(reassembler.accept("x", header(5, 0, 3, room), 0))
    assert.isUndefined(reassembler.accept("x", header(5, 1, 4, room), 0))
    assert.strictEqual(reassembler.stats().cellsRejected, 1)
  })

  it("drops the oldest partial frame past the per-address bound, and counts it", () => {
    const reassembler = fragment.makeReassembler(options)
    for (let id = 0; id < options.partialsPerAddressMax + 2; id++) reassembler.accept("x", header(id, 0, 2, room), 0)
    assert.strictEqual(reassembler.size().partials, options.partialsPerAddressMax)
    assert.strictEqual(reassembler.stats().partialsDropped, 2)
    // Frame 0 was dropped: its second cell starts a fresh partial instead of completing it.
    assert.isUndefined(reassembler.accept("x", header(0, 1, 2, 1), 0))
    assert.strictEqual(reassembler.stats().partialsDropped, 3)
  })

  it("drops the least recently active address past the address bound", () => {
    const reassembler = fragment.makeReassembler(options)
    for (const from of ["a", "b", "c", "d"]) reassembler.accept(from, header(1, 0, 2, room), 0)
    assert.strictEqual(reassembler.size().addresses, options.addressesMax)
    assert.strictEqual(reassembler.stats().partialsDropped, 1)
  })

  it("drops partial frames after the timeout, and forgets idle addresses", () => {
    const reassembler = fragment.makeReassembler(options)
    const [first, second] = fragment.cut(new Uint8Array(room + 1).fill(9), 3, cellBytes)
    reassembler.accept("x", first!, 0)
    reassembler.sweep(999)
    assert.strictEqual(reassembler.size().partials, 1)
    reassembler.sweep(1000)
    assert.deepStrictEqual(reassembler.size(), { addresses: 0, partials: 0, bufferedBytes: 0 })
    assert.strictEqual(reassembler.stats().partialsDropped, 1)
    // A late cell of an expired frame is also dropped when found stale on arrival.
    reassembler.accept("x", first!, 2000)
    assert.isUndefined(reassembler.accept("x", second!, 3500))
    assert.strictEqual(reassembler.stats().partialsDropped, 2)
  })

  it("ignores late duplicates of a completed frame instead of starting a new partial", () => {
    const reassembler = fragment.makeReassembler(options)
    const cells = fragment.cut(new Uint8Array(room * 2).fill(1), 11, cellBytes)
    assert.isUndefined(reassembler.accept("x", cells[0]!, 0))
    assert.isDefined(reassembler.accept("x", cells[1]!, 0))
    assert.isUndefined(reassembler.accept("x", cells[0]!, 1))
    assert.strictEqual(reassembler.size().partials, 0)
    assert.strictEqual(reassembler.stats().cellsDuplicate, 1)
  })

  it("forget releases an address's partial frames without counting them as dropped", () => {
    const reassembler = fragment.makeReassembler(options)
    reassembler.accept("x", header(1, 0, 2, room), 0)
    reassembler.forget("x")
    assert.deepStrictEqual(reassembler.size(), { addresses: 0, partials: 0, bufferedBytes: 0 })
    assert.strictEqual(reassembler.stats().partialsDropped, 0)
  })
})
