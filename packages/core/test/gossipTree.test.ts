import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import { type Advert, Tree, type TreeConfig } from "../src/internal/gossipTree.js"
import * as Prng from "../src/internal/prng.js"

const config: TreeConfig = { advertIntervalMs: 1000, rootTimeoutMs: 3500, depthMax: 64, switchLagMs: 20 }
const tickMs = 100

interface InFlight {
  readonly at: number
  readonly from: number
  readonly to: number
  readonly advert: Advert<number>
}

/**
 * Trees of `n` nodes over a random connected graph, adverts delivered after random delays (so they
 * overtake each other) and lost with probability `loss`, as the engine drives them: every tick, and on
 * every change an advert to every neighbour.
 */
class Net {
  readonly trees: Array<Tree<number>>
  readonly links: Array<Set<number>>
  readonly up: Array<boolean>
  private flight: Array<InFlight> = []
  now = 0

  constructor(readonly n: number, readonly prng: Prng.Prng, readonly loss: number, extraEdges: number) {
    this.trees = Array.from({ length: n }, (_, i) => new Tree(i, 0, config))
    this.links = Array.from({ length: n }, () => new Set<number>())
    this.up = Array.from({ length: n }, () => true)
    // A random spanning tree keeps the graph connected; extra edges make cycles for the tree to avoid.
    for (let i = 1; i < n; i++) this.link(i, prng.nextInt(0, i - 1))
    for (let k = 0; k < extraEdges; k++) {
      const a = prng.nextInt(0, n - 1)
      const b = prng.nextInt(0, n - 1)
      if (a !== b) this.link(a, b)
    }
    for (let i = 0; i < n; i++) this.advertise(i)
  }

  link(a: number, b: number): void {
    this.links[a]!.add(b)
    this.links[b]!.add(a)
  }

  unlink(a: number, b: number): void {
    if (!this.links[a]!.delete(b)) return
    this.links[b]!.delete(a)
    if (this.trees[a]!.onPeerDown(this.now, b)) this.advertise(a)
    if (this.trees[b]!.onPeerDown(this.now, a)) this.advertise(b)
  }

  kill(node: number): void {
    for (const peer of [...this.links[node]!]) this.unlink(node, peer)
    this.up[node] = false
  }

  advertise(node: number): void {
    const tree = this.trees[node]!
    tree.lastAdvertAt = this.now
    for (const to of this.links[node]!) {
      if (this.prng.nextFloat() < this.loss) continue
      this.flight.push({ at: this.now + 5 + this.prng.nextFloat() * 60, from: node, to, advert: tree.advertFor(to) })
    }
  }

  /** Runs for `ms`, calling `check` after every event. */
  run(ms: number, check: () => void): void {
    const end = this.now + ms
    while (this.now < end) {
      const tickEnd = this.now + tickMs
      this.flight.sort((x, y) => x.at - y.at)
      while (this.flight.length > 0 && this.flight[0]!.at <= tickEnd) {
        const message = this.flight.shift()!
        this.now = message.at
        if (!this.links[message.to]!.has(message.from)) continue
        if (this.trees[message.to]!.onAdvert(this.now, message.from, message.advert)) this.advertise(message.to)
        check()
      }
      this.now = tickEnd
      for (let i = 0; i < this.n; i++) if (this.up[i] && this.trees[i]!.onTick(this.now)) this.advertise(i)
      check()
    }
  }

  /** Throws if following parent pointers from any node comes back to it. */
  assertLoopFree(): void {
    for (let start = 0; start < this.n; start++) {
      const visited = new Set<number>()
      let node: number | undefined = start
      while (node !== undefined) {
        if (visited.has(node)) throw new Error(`parent loop through ${node} at ${this.now} ms`)
        visited.add(node)
        node = this.trees[node]!.parent
      }
    }
  }

  /** Every live node reaches `root` by parent pointers, and parents are neighbours. */
  assertSpanningTree(root: number): void {
    for (let i = 0; i < this.n; i++) {
      if (!this.up[i]) continue
      let node = i
      for (let hops = 0; node !== root; hops++) {
        const parent = this.trees[node]!.parent
        expect(parent, `node ${node} has no parent (root ${this.trees[node]!.root})`).toBeDefined()
        expect(this.links[node]!.has(parent!)).toBe(true)
        expect(hops).toBeLessThan(this.n)
        node = parent!
      }
      expect(this.trees[i]!.root).toBe(root)
    }
  }

  /** Children sets agree with parent pointers once adverts have settled. */
  assertChildrenAgree(): void {
    for (let i = 0; i < this.n; i++) {
      if (!this.up[i]) continue
      const parent = this.trees[i]!.parent
      if (parent !== undefined) expect(this.trees[parent]!.children.has(i)).toBe(true)
      for (const child of this.trees[i]!.children) expect(this.trees[child]!.parent).toBe(i)
    }
  }
}

const scenario = fc.record({
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  n: fc.integer({ min: 2, max: 40 }),
  extra: fc.integer({ min: 0, max: 80 }),
  loss: fc.constantFrom(0, 0.05, 0.2)
})

describe("gossip tree", () => {
  it("property: parent pointers never form a loop, whatever the delays, losses and link failures", () => {
    fc.assert(
      fc.property(scenario, ({ seed, n, extra, loss }) => {
        const prng = Prng.make(seed)
        const net = new Net(n, prng, loss, extra)
        const check = () => net.assertLoopFree()
        net.run(3000, check)
        // Cut random links (the graph may split) and kill the root, then keep going.
        for (let k = 0; k < n / 2; k++) {
          const a = prng.nextInt(0, n - 1)
          const peers = [...net.links[a]!]
          if (peers.length > 0) net.unlink(a, peers[prng.nextInt(0, peers.length - 1)]!)
        }
        net.kill(0)
        net.run(10_000, check)
      }),
      { numRuns: 60 }
    )
  })

  it("property: without loss, every node converges on the smallest id as root and a spanning tree to it", () => {
    fc.assert(
      fc.property(scenario, ({ seed, n, extra }) => {
        const net = new Net(n, Prng.make(seed), 0, extra)
        net.run(5000, () => {})
        net.assertSpanningTree(0)
        net.assertChildrenAgree()
      }),
      { numRuns: 60 }
    )
  })

  it("elects the next smallest id when the root dies, and rebuilds the tree to it", () => {
    const net = new Net(30, Prng.make(7), 0, 40)
    net.run(5000, () => net.assertLoopFree())
    net.assertSpanningTree(0)
    // Node 0's only link to the rest is what keeps the graph connected? Kill it and re-link its
    // neighbours to each other so the rest stays connected.
    const orphans = [...net.links[0]!]
    net.kill(0)
    for (let k = 1; k < orphans.length; k++) net.link(orphans[k - 1]!, orphans[k]!)
    net.run(10_000, () => net.assertLoopFree())
    net.assertSpanningTree(1)
    net.assertChildrenAgree()
  })

  it("heals within about one wave when a parent's link drops", () => {
    const net = new Net(30, Prng.make(11), 0, 60)
    net.run(5000, () => {})
    const child = net.trees.findIndex((tree, i) => i !== 0 && tree.parent !== undefined && net.links[i]!.size > 1)
    net.unlink(child, net.trees[child]!.parent!)
    net.run(1500, () => net.assertLoopFree())
    net.assertSpanningTree(0)
  })

  it("moves to a neighbour that brings waves consistently earlier than its parent", () => {
    // 0 — 1 — 2 and 0 — 3 — 2: node 2 first takes one of 1 or 3; whichever is slow, it moves to the other.
    const tree = new Tree(2, 0, config)
    const advert = (seq: number, parentIsMe = false): Advert<number> => ({ root: 0, seq, dist: 1, parentIsMe })
    tree.onAdvert(0, 1, advert(1))
    expect(tree.parent).toBe(1)
    for (let seq = 2; seq < 8; seq++) {
      const t = seq * 1000
      tree.onAdvert(t, 3, advert(seq)) // 3 brings every wave first ...
      tree.onAdvert(t + 40, 1, advert(seq)) // ... and 1, still our parent, 40 ms later
      if (tree.parent === 3) break
    }
    expect(tree.parent).toBe(3)
    expect(tree.dist).toBe(2)
  })

  it("leaves a parent that keeps failing to push messages, even when its waves come first", () => {
    const tree = new Tree(2, 0, config)
    const advert = (seq: number): Advert<number> => ({ root: 0, seq, dist: 1, parentIsMe: false })
    tree.onAdvert(0, 1, advert(1))
    tree.onAdvert(0, 3, advert(1))
    expect(tree.parent).toBe(1)
    // Parent 1 pushes two messages in three (a lossy link): not a dropper by the rule.
    for (let i = 0; i < 40; i++) tree.noteParent(i % 3 !== 0)
    tree.onAdvert(1000, 1, advert(2))
    tree.onAdvert(1000, 3, advert(2))
    expect(tree.parent).toBe(1)
    // Then it stops pushing: at its next wave we move to the other feasible neighbour, although 1 is first.
    for (let i = 0; i < 40; i++) tree.noteParent(false)
    tree.onAdvert(2000, 1, advert(3))
    expect(tree.parent).toBe(3)
    tree.onAdvert(2010, 3, advert(3))
    expect(tree.parent).toBe(3)
    expect(tree.seq).toBe(3)
  })

  it("ignores a neighbour that names us its parent, and adverts beyond the depth bound", () => {
    const tree = new Tree(5, 0, config)
    tree.onAdvert(0, 1, { root: 0, seq: 3, dist: 2, parentIsMe: true })
    expect(tree.parent).toBeUndefined()
    expect(tree.children.has(1)).toBe(true)
    tree.onAdvert(0, 2, { root: 0, seq: 3, dist: config.depthMax, parentIsMe: false })
    expect(tree.parent).toBeUndefined()
    // Still root of ourselves? No: root 0 is known, but no route: we advertise "no route".
    expect(tree.advertFor(9).dist).toBe(config.depthMax)
  })
})
