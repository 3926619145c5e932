/**
 * A deterministic multi-node consensus simulation: one discrete-event loop in one process, every
 * node a real `Consensus.Service` and `Mempool`, all time from a simulated `Clock` service (at each
 * event's time; `TestClock.setTime` yields to the real event loop on every call, far too slow for tens
 * of thousands of events), all randomness from one seeded generator. Messages carry encoded bytes; a link loses a message with
 * probability `lossRate` and delays it by a uniform latency; a partition cuts every link between its
 * two sides for a range of slots.
 *
 * A node gossips what it imports (a seen-set, as `Gossip` keeps, so each node checks a block once),
 * keeps blocks whose parent it lacks as orphans and asks the sender for the missing chain (`want`,
 * answered with up to `catchUpBlocksMax` blocks, parent first, from the node's archive: its stored
 * chain), and each slot tells one random peer its head and oldest pending transactions, so a lost
 * last block, or a transaction the partition cut off, still spreads.
 *
 * The invariant is checked at every import: every block any node has ever finalized lies on one
 * chain (for two finalized blocks, the lower is an ancestor of the higher).
 */
import { createHash } from "node:crypto"
import { Clock, Effect, Either } from "effect"
import type * as Account from "../../src/Account.js"
import * as Block from "../../src/Block.js"
import * as Consensus from "../../src/Consensus.js"
import * as Id from "../../src/Id.js"
import type { LedgerError } from "../../src/LedgerError.js"
import * as LedgerLimits from "../../src/LedgerLimits.js"
import * as Mempool from "../../src/Mempool.js"
import * as Transaction from "../../src/Transaction.js"
import { MinHeap } from "../../src/internal/mempoolHeap.js"

/** mulberry32: a small seeded generator, so a run replays from its seed. */
export const random = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** What the simulation runs. */
export interface Options {
  readonly seed: number
  readonly genesis: Block.Genesis
  /** Authority accounts in genesis order; each runs on its own node (nodes 0..n-1). */
  readonly authorities: ReadonlyArray<Account.Account>
  /** Nodes that only follow. */
  readonly followers: number
  /** Links each node opens to random others (the graph is their union). */
  readonly degree: number
  readonly lossRate: number
  readonly latencyMs: readonly [number, number]
  /** Authorities produce in slots 1..lastSlot; the run goes on to drainSlot with head announcements only. */
  readonly lastSlot: number
  readonly drainSlot: number
  /** Nodes on side A during slots [fromSlot, toSlot); every other node is on side B. */
  readonly partition: { readonly fromSlot: number; readonly toSlot: number; readonly sideA: ReadonlySet<number> }
  /** Transactions injected at a random node, one every `txEverySlots` slots from slot 2. */
  readonly txs: ReadonlyArray<Transaction.Transaction>
  readonly txEverySlots: number
}

type Message =
  | { readonly kind: "block"; readonly bytes: Uint8Array }
  | { readonly kind: "blocks"; readonly list: ReadonlyArray<Uint8Array> }
  | { readonly kind: "tx"; readonly bytes: Uint8Array }
  | { readonly kind: "want"; readonly id: Id.Id }
  | { readonly kind: "head"; readonly id: Id.Id }

type Event =
  | { readonly kind: "deliver"; readonly at: number; readonly seq: number; readonly to: number; readonly from: number; readonly message: Message }
  | { readonly kind: "slot"; readonly at: number; readonly seq: number; readonly slot: number }

/** One simulated node. */
export interface Node {
  readonly index: number
  readonly consensus: Consensus.Service
  readonly authority: Account.Account | undefined
  readonly pool: Mempool.Mempool
  readonly peers: Array<number>
  /** Digests of messages handled (the gossip seen-set). */
  readonly seen: Set<string>
  /** Every block this node imported, by id: what a node's store would serve to a catch-up. */
  readonly archive: Map<Id.Id, Uint8Array>
  /** Blocks waiting for their parent, by parent id. */
  readonly orphans: Map<Id.Id, Array<Uint8Array>>
  finalized: Id.Id
}

/** Counters of a run. */
export interface Stats {
  sent: number
  lost: number
  cut: number
  wants: number
  produced: number
  reorgs: number
  /** Rejections other than Duplicate and Stale, by reason: an honest network should have none. */
  readonly unexpected: Map<string, number>
}

/** Parents a simulated node keeps orphans for; past it the oldest waiting parent's orphans go. */
export const orphansMax = 64
/** Blocks one catch-up answer carries at most. */
export const catchUpBlocksMax = 16
/** Pending transactions a node re-announces to one peer per slot. */
export const pendingAnnouncedMax = 4

const digest = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** The simulation's state and its event loop. */
export class Simulation {
  readonly rng: () => number
  readonly nodes: Array<Node> = []
  readonly stats: Stats = { sent: 0, lost: 0, cut: 0, wants: 0, produced: 0, reorgs: 0, unexpected: new Map() }
  /** Every block produced: its parent and height, to check ancestry between any two finalized blocks. */
  readonly registry = new Map<Id.Id, { readonly parent: Id.Id; readonly height: number }>()
  /** The highest block any node has finalized; every finalized block must be on its chain. */
  highestFinalized: { readonly id: Id.Id; readonly height: number }
  /** The height of the highest finalized block when the partition began and when it healed. */
  readonly finalizedHeights = { atPartition: -1, atHeal: -1 }
  private readonly queue = new MinHeap<Event>((a, b) => (a.at !== b.at ? a.at < b.at : a.seq < b.seq))
  private seq = 0
  private readonly genesisEntry: Consensus.Entry

  constructor(readonly options: Options, genesisEntry: Consensus.Entry) {
    this.rng = random(options.seed)
    this.genesisEntry = genesisEntry
    this.highestFinalized = { id: genesisEntry.id, height: 0 }
    this.registry.set(genesisEntry.id, { parent: genesisEntry.parent, height: 0 })
  }

  /** The nodes, their links and the schedule of slots. */
  readonly setup = Effect.gen(this, function*() {
    const { authorities, followers, genesis, degree } = this.options
    for (let index = 0; index < authorities.length + followers; index++) {
      const consensus = yield* Consensus.make({ genesis }).pipe(Effect.provide(LedgerLimits.layer()))
      this.nodes.push({
        index, consensus, authority: authorities[index], pool: Mempool.make(), peers: [],
        seen: new Set(), archive: new Map(), orphans: new Map(), finalized: this.genesisEntry.id
      })
    }
    for (const node of this.nodes) {
      while (node.peers.length < degree) {
        const other = Math.floor(this.rng() * this.nodes.length)
        if (other === node.index || node.peers.includes(other)) continue
        node.peers.push(other)
        this.nodes[other]!.peers.push(node.index)
      }
    }
    for (let slot = 1; slot <= this.options.drainSlot; slot++) {
      this.push({ kind: "slot", at: Consensus.slotStartMs(genesis, slot) + 1, seq: 0, slot })
    }
  })

  /** The simulated time: the current event's. */
  nowMs = 0

  /** The Clock every node reads: the simulated time; nothing in the simulation sleeps. */
  readonly clock: Clock.Clock = {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => this.nowMs,
    currentTimeMillis: Effect.sync(() => this.nowMs),
    unsafeCurrentTimeNanos: () => BigInt(this.nowMs) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => BigInt(this.nowMs) * 1_000_000n),
    sleep: () => Effect.dieMessage("the simulation clock does not sleep")
  }

  /**
   * Runs every event in time order, the clock following them. The fiber yields to the scheduler rarely:
   * nothing else runs meanwhile, and each yield is a round trip through the event loop.
   */
  readonly run = Effect.withClock(Effect.gen(this, function*() {
    yield* this.setup
    for (let event = this.queue.pop(); event !== undefined; event = this.queue.pop()) {
      this.nowMs = event.at
      if (event.kind === "slot") yield* this.onSlot(event.slot)
      else yield* this.onMessage(this.nodes[event.to]!, event.from, event.message)
    }
  }).pipe(Effect.withMaxOpsBeforeYield(1_000_000)), this.clock)

  private push(event: Event): void {
    this.queue.push({ ...event, seq: this.seq++ })
  }

  private partitioned(a: number, b: number, slot: number): boolean {
    const { fromSlot, toSlot, sideA } = this.options.partition
    return slot >= fromSlot && slot < toSlot && sideA.has(a) !== sideA.has(b)
  }

  /** Sends over one link: cut by the partition, lost with `lossRate`, else delivered after a random latency. */
  send(from: number, to: number, message: Message, nowMs: number): void {
    this.stats.sent++
    if (this.partitioned(from, to, Consensus.slotAt(this.options.genesis, nowMs))) {
      this.stats.cut++
      return
    }
    if (this.rng() < this.options.lossRate) {
      this.stats.lost++
      return
    }
    const [low, high] = this.options.latencyMs
    this.push({ kind: "deliver", at: nowMs + low + Math.floor(this.rng() * (high - low + 1)), seq: 0, to, from, message })
  }

  private flood(node: Node, message: Message, except: number, nowMs: number): void {
    for (const peer of node.peers) if (peer !== except) this.send(node.index, peer, message, nowMs)
  }

  private onSlot = (slot: number) =>
    Effect.gen(this, function*() {
      const nowMs = Consensus.slotStartMs(this.options.genesis, slot) + 1
      const { fromSlot, toSlot } = this.options.partition
      if (slot === fromSlot) this.finalizedHeights.atPartition = this.highestFinalized.height
      if (slot === toSlot) this.finalizedHeights.atHeal = this.highestFinalized.height
      if (slot <= this.options.lastSlot) {
        for (const node of this.nodes) if (node.authority !== undefined) yield* this.produce(node, node.authority, nowMs)
        yield* this.injectTx(slot, nowMs)
      }
      for (const node of this.nodes) yield* this.announce(node, nowMs)
    })

  /** Tells one random peer this node's head and its oldest pending transactions: a lost last block or a transaction cut off by the partition is fetched this way. */
  private announce = (node: Node, nowMs: number) =>
    Effect.gen(this, function*() {
      const peer = node.peers[Math.floor(this.rng() * node.peers.length)]!
      this.send(node.index, peer, { kind: "head", id: (yield* node.consensus.head).id }, nowMs)
      for (const tx of Mempool.transactions(node.pool).slice(0, pendingAnnouncedMax)) this.send(node.index, peer, { kind: "tx", bytes: yield* Transaction.encode(tx) }, nowMs)
    })

  private produce = (node: Node, authority: Account.Account, nowMs: number) =>
    Effect.gen(this, function*() {
      const { params } = this.options.genesis
      const made = yield* node.consensus.produce(authority, (state) => Mempool.take(node.pool, state, params, 64))
      if (made._tag === "None") return
      const { block } = made.value.entry
      const bytes = yield* Block.encode(block)
      this.stats.produced++
      this.registry.set(made.value.entry.id, { parent: made.value.entry.parent, height: block.header.height })
      node.seen.add(digest(bytes))
      this.imported(node, made.value, bytes)
      this.flood(node, { kind: "block", bytes }, -1, nowMs)
    })

  private injectTx = (slot: number, nowMs: number) =>
    Effect.gen(this, function*() {
      const { txs, txEverySlots } = this.options
      const index = (slot - 2) / txEverySlots
      const tx = Number.isInteger(index) ? txs[index] : undefined
      if (tx === undefined) return
      const node = this.nodes[Math.floor(this.rng() * this.nodes.length)]!
      yield* this.onMessage(node, -1, { kind: "tx", bytes: yield* Transaction.encode(tx) })
    })

  private onMessage = (node: Node, from: number, message: Message): Effect.Effect<void, LedgerError> =>
    Effect.gen(this, function*() {
      const nowMs = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      switch (message.kind) {
        case "block":
          return yield* this.onBlock(node, from, message.bytes, nowMs)
        case "blocks":
          for (const bytes of message.list) yield* this.onBlock(node, from, bytes, nowMs)
          return
        case "tx":
          return yield* this.onTx(node, from, message.bytes, nowMs)
        case "want":
          return this.onWant(node, from, message.id, nowMs)
        case "head":
          if (!node.archive.has(message.id) && message.id !== this.genesisEntry.id) this.want(node, from, message.id, nowMs)
      }
    })

  private want(node: Node, from: number, id: Id.Id, nowMs: number): void {
    this.stats.wants++
    this.send(node.index, from, { kind: "want", id }, nowMs)
  }

  /**
   * Answers a catch-up request with the wanted block and its ancestors this node stored, parent first
   * (the registry stands in for the parent id a store keeps beside each block).
   */
  private onWant(node: Node, from: number, id: Id.Id, nowMs: number): void {
    const list: Array<Uint8Array> = []
    for (let at: Id.Id | undefined = id; at !== undefined && list.length < catchUpBlocksMax;) {
      const bytes = node.archive.get(at)
      if (bytes === undefined) break
      list.push(bytes)
      at = this.registry.get(at)?.parent
    }
    if (list.length > 0) this.send(node.index, from, { kind: "blocks", list: list.reverse() }, nowMs)
  }

  private onBlock = (node: Node, from: number, bytes: Uint8Array, nowMs: number): Effect.Effect<void, LedgerError> =>
    Effect.gen(this, function*() {
      const key = digest(bytes)
      if (node.seen.has(key)) return
      node.seen.add(key)
      const result = yield* Effect.either(node.consensus.receive(bytes))
      if (Either.isRight(result)) {
        this.imported(node, result.right, bytes)
        this.flood(node, { kind: "block", bytes }, from, nowMs)
        return yield* this.adoptOrphans(node, result.right.entry.id, nowMs)
      }
      const { reason } = result.left
      if (reason === "UnknownParent") return yield* this.orphan(node, from, bytes, key, nowMs)
      if (reason !== "Duplicate" && reason !== "Stale") this.stats.unexpected.set(reason, (this.stats.unexpected.get(reason) ?? 0) + 1)
    })

  /** Keeps a block whose parent is missing (bounded: the oldest waiting parent goes) and asks the sender for its chain. */
  private orphan = (node: Node, from: number, bytes: Uint8Array, key: string, nowMs: number) =>
    Effect.gen(this, function*() {
      node.seen.delete(key) // so a later copy is looked at again
      const block = yield* Block.decode(bytes, this.options.genesis, nowMs)
      const parent = Id.fromBytes(block.header.parent)
      const waiting = node.orphans.get(parent) ?? []
      if (waiting.length === 0 && node.orphans.size >= orphansMax) node.orphans.delete(node.orphans.keys().next().value!)
      waiting.push(bytes)
      node.orphans.set(parent, waiting)
      if (from >= 0) this.want(node, from, parent, nowMs)
    })

  private adoptOrphans = (node: Node, parent: Id.Id, nowMs: number): Effect.Effect<void, LedgerError> =>
    Effect.gen(this, function*() {
      const waiting = node.orphans.get(parent)
      if (waiting === undefined) return
      node.orphans.delete(parent)
      for (const bytes of waiting) yield* this.onBlock(node, -1, bytes, nowMs)
    })

  /** After an import: archive the bytes, check finality, follow the head with the mempool. */
  private imported(node: Node, imported: Consensus.Imported, bytes: Uint8Array): void {
    node.archive.set(imported.entry.id, bytes)
    this.checkFinalized(node, imported.finalized)
    if (imported.reorg.removed.length > 0) this.stats.reorgs++
    const { params } = this.options.genesis
    Mempool.revalidate(node.pool, imported.head.state)
    // Transactions of blocks the head left are pending again.
    for (const entry of imported.reorg.removed) for (const tx of entry.block.txs) Mempool.add(node.pool, tx, imported.head.state, params)
  }

  private onTx = (node: Node, from: number, bytes: Uint8Array, nowMs: number) =>
    Effect.gen(this, function*() {
      const key = digest(bytes)
      if (node.seen.has(key)) return
      node.seen.add(key)
      const head = yield* node.consensus.head
      const added = Either.flatMap(Transaction.decode(bytes), (tx) => Mempool.add(node.pool, tx, head.state, this.options.genesis.params))
      if (Either.isRight(added)) this.flood(node, { kind: "tx", bytes }, from, nowMs)
    })

  /** Whether `low` is `high` or one of its ancestors. */
  isAncestor(low: { readonly id: Id.Id; readonly height: number }, high: Id.Id): boolean {
    let at: Id.Id | undefined = high
    for (let info = this.registry.get(at); info !== undefined && info.height > low.height; info = at === undefined ? undefined : this.registry.get(at)) at = info.parent
    return at === low.id
  }

  /** The safety check: a node's finalized block only moves forward, and all finalized blocks lie on one chain. */
  private checkFinalized(node: Node, finalized: Consensus.Entry): void {
    const { seed } = this.options
    if (finalized.id === node.finalized) return
    const previous = this.registry.get(node.finalized)!
    if (!this.isAncestor({ id: node.finalized, height: previous.height }, finalized.id)) {
      throw new Error(`seed ${seed}: node ${node.index} finalized 0x${finalized.id}, not a descendant of its finalized 0x${node.finalized}`)
    }
    node.finalized = finalized.id
    const [low, high] = finalized.height >= this.highestFinalized.height
      ? [this.highestFinalized, finalized]
      : [{ id: finalized.id, height: finalized.height }, this.highestFinalized]
    if (!this.isAncestor(low, high.id)) throw new Error(`seed ${seed}: conflicting finalized blocks 0x${low.id} and 0x${high.id}`)
    if (high === finalized) this.highestFinalized = { id: finalized.id, height: finalized.height }
  }
}
