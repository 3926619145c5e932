/**
 * The dissemination tree of one topic at one node: who our parent is and who our children are, kept
 * by a distance-vector protocol towards an elected root (the subscriber with the smallest id), with
 * sequence numbers as in DSDV and Babel's feasibility condition, so the tree is loop-free by
 * construction instead of being cut into fragments by duplicate-driven prunes.
 *
 * - Each node sends its neighbours an advertisement `(root, seq, dist, parentIsMe)` whenever it changes
 *   and at least once per `advertIntervalMs`. The root raises `seq` once per interval; that wave runs
 *   down the tree, each node adopting the new `seq` from its parent and passing it on at once.
 * - Root: the smallest id among ourselves and the roots our neighbours advertise. A root whose `seq`
 *   stops rising for `rootTimeoutMs` is dead: it is remembered as stale (its old numbers are ignored)
 *   and the next smallest takes over.
 * - Parent: a neighbour is *feasible* if it has our root, does not name us its parent, and either has a
 *   newer `seq` than ours or the same `seq` at a smaller distance than the smallest we advertised for it
 *   (the feasibility distance). Along parent pointers `seq` never decreases and, for one `seq`, the
 *   distance only falls, so a feasible neighbour is never our descendant: no loop can form.
 * - Latency: each wave shows which neighbour is nearest the root in time. If our parent keeps bringing
 *   waves `switchLagMs` (moving average) after another neighbour does, or keeps failing to push messages
 *   (we fetch most of them), we move to a neighbour as soon as it brings the next wave (a newer `seq`,
 *   so the move is feasible). Hysteresis, not every wave.
 *
 * The engine pushes a topic's messages to the parent and the children: a spanning tree, one copy per node.
 */

/** A neighbour's latest advertisement. */
export interface Advert<P> {
  readonly root: P
  readonly seq: number
  /** Hops to the root; `depthMax` or more means "no route". */
  readonly dist: number
  readonly parentIsMe: boolean
}

/** The tree's tunables, in ms and hops. */
export interface TreeConfig {
  readonly advertIntervalMs: number
  readonly rootTimeoutMs: number
  readonly depthMax: number
  readonly switchLagMs: number
}

interface Heard<P> {
  root: P
  seq: number
  dist: number
  parentIsMe: boolean
  at: number
}

/** Weight of the newest wave in the parent's lag average. */
const LAG_WEIGHT = 1 / 4
/** Weight of the newest message in the parent's miss average, and the average above which we move. */
const MISS_WEIGHT = 1 / 8
const MISSED_MAX = 0.5

/** One topic's tree state at one node. Methods return true when our advertisement changed. */
export class Tree<P> {
  root: P
  seq = 0
  dist = 0
  parent: P | undefined = undefined
  readonly children = new Set<P>()
  /** When our advertisement was last sent (the engine sets it). */
  lastAdvertAt = Number.NEGATIVE_INFINITY
  private readonly heard = new Map<P, Heard<P>>()
  private ownSeq = 0
  private seqAt: number
  private feasibleDist = 0
  private stale: { readonly root: P; readonly seq: number } | undefined = undefined
  private waveSeq = -1
  private waveAt = 0
  private lag = 0
  private missed = 0

  constructor(readonly self: P, now: number, readonly config: TreeConfig) {
    this.root = self
    this.seqAt = now
  }

  /** Our advertisement as seen by `peer`. */
  advertFor(peer: P): Advert<P> {
    return { root: this.root, seq: this.seq, dist: this.dist, parentIsMe: peer === this.parent }
  }

  /**
   * A message reached us: pushed by our parent (`true`) or fetched after the parent's push never came
   * (`false`). A parent that keeps failing (a dropper, or a congested link) is left at the next wave.
   */
  noteParent(delivered: boolean): void {
    this.missed += MISS_WEIGHT * ((delivered ? 0 : 1) - this.missed)
  }

  /** Whether `peer` is a tree neighbour (data is pushed to it). */
  isEager(peer: P): boolean {
    return peer === this.parent || this.children.has(peer)
  }

  /** Neighbours' adverts held (memory accounting). */
  get heardSize(): number {
    return this.heard.size
  }

  onAdvert(now: number, from: P, advert: Advert<P>): boolean {
    const heard = this.heard.get(from)
    if (heard === undefined) {
      this.heard.set(from, { root: advert.root, seq: advert.seq, dist: advert.dist, parentIsMe: advert.parentIsMe, at: now })
    } else {
      heard.root = advert.root
      heard.seq = advert.seq
      heard.dist = advert.dist
      heard.parentIsMe = advert.parentIsMe
      heard.at = now
    }
    if (advert.parentIsMe) this.children.add(from)
    else this.children.delete(from)
    if (this.stale !== undefined && advert.root === this.stale.root && advert.seq > this.stale.seq) this.stale = undefined
    // Only a smaller root can displace ours here; a dead root is noticed by its silence (`onTick`).
    const takeRoot = advert.root < this.root && this.usable(this.heard.get(from)!, now)
    return this.reselect(now, from, takeRoot ? advert.root : this.root)
  }

  onPeerDown(now: number, peer: P): boolean {
    this.heard.delete(peer)
    this.children.delete(peer)
    return this.reselect(now, undefined, this.root)
  }

  /** Periodic: the root starts a wave each interval; others check that the root is alive. */
  onTick(now: number): boolean {
    if (this.root === this.self) {
      if (now - this.seqAt < this.config.advertIntervalMs) return false
      this.ownSeq = Math.max(this.ownSeq, this.seq) + 1
      this.seq = this.ownSeq
      this.seqAt = now
      return true
    }
    if (now - this.seqAt > this.config.rootTimeoutMs) {
      this.stale = { root: this.root, seq: this.seq }
      this.become(this.self, now)
      this.reselect(now, undefined, this.smallestRoot(now))
      return true
    }
    return now - this.lastAdvertAt >= this.config.advertIntervalMs
  }

  private usable(advert: Heard<P>, now: number): boolean {
    if (now - advert.at > this.config.rootTimeoutMs) return false
    return this.stale === undefined || advert.root !== this.stale.root || advert.seq > this.stale.seq
  }

  private feasible(advert: Heard<P>, now: number): boolean {
    if (advert.root !== this.root || advert.parentIsMe || advert.dist >= this.config.depthMax - 1) return false
    if (!this.usable(advert, now)) return false
    return advert.seq > this.seq || (advert.seq === this.seq && advert.dist < this.feasibleDist)
  }

  private smallestRoot(now: number): P {
    let best = this.self
    for (const advert of this.heard.values()) if (advert.root < best && this.usable(advert, now)) best = advert.root
    return best
  }

  private reselect(now: number, trigger: P | undefined, root: P): boolean {
    const { root: rootBefore, seq, dist, parent } = this
    if (root !== this.root) this.become(root, now)
    if (this.root === this.self) {
      this.parent = undefined
      this.dist = 0
      this.seq = Math.max(this.seq, this.ownSeq)
    } else {
      this.followParent(now, trigger)
    }
    return rootBefore !== this.root || seq !== this.seq || dist !== this.dist || parent !== this.parent
  }

  private become(root: P, now: number): void {
    this.root = root
    this.parent = undefined
    this.seq = root === this.self ? this.ownSeq : -1
    this.dist = root === this.self ? 0 : this.config.depthMax
    this.feasibleDist = Number.POSITIVE_INFINITY
    this.seqAt = now
    this.waveSeq = -1
    this.lag = 0
  }

  private followParent(now: number, trigger: P | undefined): void {
    const current = this.parent === undefined ? undefined : this.heard.get(this.parent)
    const valid = current !== undefined && current.root === this.root && !current.parentIsMe &&
      current.dist < this.config.depthMax - 1 && this.usable(current, now)
    if (!valid) return this.adopt(this.bestFeasible(now), now)
    if (current.seq > this.seq && this.missed > MISSED_MAX && current.seq < this.seq + 2) {
      // A parent that keeps failing to push: move to any other feasible neighbour now, or wait for one
      // to bring this wave (newer than ours, so feasible); a wave later we follow the parent again.
      const other = this.bestFeasible(now, this.parent)
      if (other !== undefined) this.take(other, this.heard.get(other)!, now)
      return
    }
    if (current.seq > this.seq) {
      // Our parent brings a new wave: how late was it behind the first neighbour that brought it?
      const lag = this.waveSeq === current.seq ? now - this.waveAt : 0
      this.lag += LAG_WEIGHT * (lag - this.lag)
      this.take(this.parent!, current, now)
      return
    }
    this.dist = current.dist + 1
    this.feasibleDist = Math.min(this.feasibleDist, this.dist)
    const advert = trigger === undefined || trigger === this.parent ? undefined : this.heard.get(trigger)
    if (advert === undefined || advert.seq <= this.seq || !this.feasible(advert, now)) return
    if (this.waveSeq < advert.seq) {
      this.waveSeq = advert.seq
      this.waveAt = now
    }
    // A neighbour brings a wave our parent has not: move if our parent is usually slower, keeps failing
    // to push, or is cut off.
    if (this.lag > this.config.switchLagMs || this.missed > MISSED_MAX || advert.seq >= this.seq + 2) {
      this.take(trigger!, advert, now)
    }
  }

  private bestFeasible(now: number, except?: P): P | undefined {
    let chosen: P | undefined
    let chosenAdvert: Heard<P> | undefined
    for (const [peer, advert] of this.heard) {
      if (peer === except || !this.feasible(advert, now)) continue
      if (chosenAdvert === undefined || advert.seq > chosenAdvert.seq ||
        (advert.seq === chosenAdvert.seq && advert.dist < chosenAdvert.dist)) {
        chosen = peer
        chosenAdvert = advert
      }
    }
    return chosen
  }

  private adopt(peer: P | undefined, now: number): void {
    if (peer === undefined) {
      // No feasible neighbour: advertise "no route" and wait for the next wave, which any neighbour
      // that still reaches the root brings with a newer seq (feasible by definition).
      this.parent = undefined
      this.dist = this.config.depthMax
      return
    }
    this.take(peer, this.heard.get(peer)!, now)
  }

  private take(peer: P, advert: Heard<P>, now: number): void {
    if (peer !== this.parent) {
      this.lag = 0
      this.missed = 0
    }
    if (advert.seq > this.seq) {
      this.seqAt = now
      this.feasibleDist = Number.POSITIVE_INFINITY
    }
    this.parent = peer
    this.seq = advert.seq
    this.dist = advert.dist + 1
    this.feasibleDist = Math.min(this.feasibleDist, this.dist)
  }
}
