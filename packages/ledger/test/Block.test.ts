import { assert, describe, it } from "@effect/vitest"
import { Canonical } from "@weft/core"
import { Either } from "effect"
import * as FastCheck from "effect/FastCheck"
import * as Account from "../src/Account.js"
import * as Block from "../src/Block.js"
import * as Consensus from "../src/Consensus.js"
import * as Id from "../src/Id.js"
import * as LedgerLimits from "../src/LedgerLimits.js"
import { account, authorities, genesis, ok, producerAccount, reasonOf, transfer, users } from "./sim/chain.js"

const chain = genesis()
const tree = ok(Consensus.init(chain))
const root = Consensus.finalized(tree)
const [alice, bob] = users()
const tx = transfer(chain, alice!, bob!, 0, 1)
const block = ok(Block.make({ genesis: chain, parent: root, slot: 3, txs: [tx], producer: producerAccount(chain, 3) }))
const bytes = ok(Block.encode(block))
const now = 3_500

/** Re-signs a header as `signer`, as a forger holding that authority's key would. */
const signedAs = (header: Block.Header, txs: Block.Block["txs"], signer: Account.Account): Uint8Array =>
  ok(Block.encode({ header, txs, signature: Account.sign(signer, Block.signingMessage(Block.id(header))) }))

describe("Block", () => {
  it("round-trips a made block byte for byte, with an id over the header", () => {
    const decoded = ok(Block.decode(bytes, chain, now))
    assert.deepStrictEqual(ok(Block.encode(decoded)), bytes)
    assert.strictEqual(Block.id(decoded.header), Block.id(block.header))
    assert.strictEqual(decoded.header.height, 1)
    assert.strictEqual(Id.fromBytes(decoded.header.parent), root.id)
    assert.strictEqual(Id.fromBytes(decoded.header.producer), Consensus.producerOf(chain, 3).id)
  })

  it("names the genesis block by the genesis value: other authorities, another chain", () => {
    const other = genesis({ authorities: 4 })
    assert.notStrictEqual(Block.id(Block.genesisBlock(other).header), root.id)
    assert.strictEqual(Block.id(Block.genesisBlock(chain).header), root.id)
  })

  it("refuses a genesis without authorities, with a key that does not name its account, or a duplicate", () => {
    const [first, second] = authorities(2)
    const base = { params: chain.params, allocations: [], timeMs: 0 }
    assert.strictEqual(reasonOf(Block.makeGenesis({ ...base, authorities: [] })), "BadParams")
    assert.strictEqual(reasonOf(Block.makeGenesis({ ...base, authorities: [{ id: first!.id, publicKey: second!.publicKey }] })), "BadParams")
    assert.strictEqual(reasonOf(Block.makeGenesis({ ...base, authorities: [first!, first!] })), "BadParams")
  })

  it("make refuses a slot that belongs to another authority", () => {
    assert.strictEqual(reasonOf(Block.make({ genesis: chain, parent: root, slot: 3, txs: [], producer: producerAccount(chain, 4) })), "WrongProducer")
  })

  describe("decode: hostile input", () => {
    it("oversized bytes are TooLarge before parsing", () => {
      const limits = { ...LedgerLimits.defaults, blockBytesMax: bytes.length - 1 }
      assert.strictEqual(reasonOf(Block.decode(bytes, chain, now, limits)), "TooLarge")
    })

    it("too many transactions are TooLarge", () => {
      const limits = { ...LedgerLimits.defaults, transactionsPerBlockMax: 0 }
      assert.strictEqual(reasonOf(Block.decode(bytes, chain, now, limits)), "TooLarge")
    })

    it("garbage, trailing bytes and a wrong shape are Malformed", () => {
      assert.strictEqual(reasonOf(Block.decode(new Uint8Array([0xc1, 2, 3]), chain, now)), "Malformed")
      assert.strictEqual(reasonOf(Block.decode(new Uint8Array([...bytes, 0]), chain, now)), "Malformed")
      const extra = Either.getOrThrow(Canonical.encode({ ...block, extra: 1 }))
      assert.strictEqual(reasonOf(Block.decode(extra, chain, now)), "Malformed")
      const shortParent = Either.getOrThrow(Canonical.encode({ ...block, header: { ...block.header, parent: new Uint8Array(31) } }))
      assert.strictEqual(reasonOf(Block.decode(shortParent, chain, now)), "Malformed")
    })

    it("a flipped signature byte is BadSignature", () => {
      const signature = Uint8Array.from(block.signature)
      signature[100] = signature[100]! ^ 1
      assert.strictEqual(reasonOf(Block.decode(ok(Block.encode({ ...block, signature })), chain, now)), "BadSignature")
      assert.strictEqual(reasonOf(Block.decode(ok(Block.encode({ ...block, signature: new Uint8Array(5) })), chain, now)), "BadSignature")
    })

    it("a block by an authority out of its slot, or by an outsider, is WrongProducer", () => {
      const intruder = producerAccount(chain, 4)
      const header = { ...block.header, producer: Id.toBytes(intruder.id) }
      assert.strictEqual(reasonOf(Block.decode(signedAs(header, block.txs, intruder), chain, now)), "WrongProducer")
      const outsider = account(77)
      const forged = { ...block.header, producer: Id.toBytes(outsider.id) }
      assert.strictEqual(reasonOf(Block.decode(signedAs(forged, block.txs, outsider), chain, now)), "WrongProducer")
    })

    it("a signature by another authority over the right producer is BadSignature", () => {
      assert.strictEqual(reasonOf(Block.decode(signedAs(block.header, block.txs, producerAccount(chain, 4)), chain, now)), "BadSignature")
    })

    it("transactions other than the txRoot names are BadRoot", () => {
      const swapped = ok(Block.encode({ ...block, txs: [transfer(chain, alice!, bob!, 1, 1)] }))
      assert.strictEqual(reasonOf(Block.decode(swapped, chain, now)), "BadRoot")
      assert.strictEqual(reasonOf(Block.decode(ok(Block.encode({ ...block, txs: [] })), chain, now)), "BadRoot")
    })

    it("a time outside the slot, slot 0 or height 0 is BadSlot", () => {
      const producer = producerAccount(chain, 3)
      const late = { ...block.header, timeMs: 4_000 }
      assert.strictEqual(reasonOf(Block.decode(signedAs(late, block.txs, producer), chain, 5_000)), "BadSlot")
      const zero = { ...block.header, height: 0 }
      assert.strictEqual(reasonOf(Block.decode(signedAs(zero, block.txs, producer), chain, now)), "BadSlot")
    })

    it("a block timed beyond the clock plus the skew is FutureBlock; within the skew it passes", () => {
      assert.strictEqual(reasonOf(Block.decode(bytes, chain, 3_000 - LedgerLimits.defaults.blockClockSkewMsMax - 1)), "FutureBlock")
      assert.strictEqual(reasonOf(Block.decode(bytes, chain, 3_000 - LedgerLimits.defaults.blockClockSkewMsMax)), "ok")
    })

    it("a block of another chain is WrongChain", () => {
      const other = genesis({ chainId: "weft-other" })
      const foreign = ok(Block.make({ genesis: other, parent: { id: Block.id(Block.genesisBlock(other).header), height: 0 }, slot: 3, txs: [], producer: producerAccount(other, 3) }))
      assert.strictEqual(reasonOf(Block.decode(ok(Block.encode(foreign)), chain, now)), "WrongChain")
    })

    it("a swapped transaction signature changes the root (ids exclude signatures; the root does not)", () => {
      const signature = Uint8Array.from(tx.auth.signature)
      signature[0] = signature[0]! ^ 1
      const malleated = ok(Block.encode({ ...block, txs: [{ ...tx, auth: { ...tx.auth, signature } }] }))
      assert.strictEqual(reasonOf(Block.decode(malleated, chain, now)), "BadRoot")
    })

    it("random and mutated bytes give a typed error, never a throw", () => {
      const mutated = FastCheck.tuple(FastCheck.nat(bytes.length - 1), FastCheck.integer({ min: 1, max: 255 })).map(([at, flip]) => {
        const copy = Uint8Array.from(bytes)
        copy[at] = copy[at]! ^ flip
        return copy
      })
      FastCheck.assert(FastCheck.property(FastCheck.oneof(mutated, FastCheck.uint8Array({ maxLength: 2000 })), (input) => {
        const result = Block.decode(input, chain, now)
        return Either.isLeft(result) && typeof result.left.reason === "string"
      }), { numRuns: 60 })
    })
  })
})
