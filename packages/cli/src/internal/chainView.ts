/**
 * The ephemeral service's `ChainView` on a ledger node: the recent block hashes are the ids of the
 * newest `blockDepth` blocks the node's `LedgerStore` holds (it follows the head), newest first; a
 * lattice key is what the head's state registered for the account (`RegisterKeys`).
 */
import { Chain } from "@weft/ephemeral"
import { Id, LedgerNode, LedgerStore } from "@weft/ledger"
import { Effect, HashMap, Layer, Option } from "effect"

interface Cached {
  readonly headId: string
  readonly hashes: ReadonlyArray<Uint8Array>
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")

/** The newest `depth` block ids of the store's chain, newest first (re-read only when the head moved). */
const recentBlocks = (store: LedgerStore.Service, depth: number) => {
  let cached: Cached | undefined
  return Effect.gen(function*() {
    const head = yield* store.head
    if (Option.isNone(head)) return []
    const headId = hex(head.value.id)
    if (cached?.headId === headId) return cached.hashes
    const hashes: Array<Uint8Array> = []
    for (let height = head.value.height; height >= 0 && hashes.length < depth; height--) {
      const block = yield* store.blockAt(height)
      if (Option.isNone(block)) break
      hashes.push(block.value.id)
    }
    cached = { headId, hashes }
    return hashes
  })
}

const latticeKey = (node: LedgerNode.Service) => (account: Chain.AccountId) =>
  Effect.map(node.state, (state) => {
    const id = account.toLowerCase().replace(/^0x/, "") as Id.Id
    return Option.map(HashMap.get(state.keys, id), (keys): Chain.LatticeKey => ({ kemPublicKey: keys.kem, dsaPublicKey: keys.dsa }))
  })

/** The view over the node's ledger, keeping `blockDepth` recent block ids. */
export const make = (blockDepth: number) =>
  Effect.gen(function*() {
    const store = yield* LedgerStore.LedgerStore
    const node = yield* LedgerNode.LedgerNode
    return Chain.ChainView.of({ recentBlockHashes: recentBlocks(store, blockDepth), latticeKey: latticeKey(node) })
  })

/** The view as the `ChainView` service. */
export const layer = (blockDepth: number): Layer.Layer<Chain.ChainView, never, LedgerStore.LedgerStore | LedgerNode.LedgerNode> =>
  Layer.effect(Chain.ChainView, make(blockDepth))
