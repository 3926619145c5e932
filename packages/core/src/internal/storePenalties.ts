/**
 * The sync penalty table: a count per peer, capped at the ban threshold, in at most `peersMax` entries.
 * When full, the least penalized entry is forgotten (the oldest among equals), so banned peers go only
 * when every entry is banned: a flood of fresh peer identities cannot wash a ban out.
 */

/** A bounded table of penalties by peer. */
export class Penalties<Peer> {
  /** Map order is recency: a peer moves to the end each time it is penalized. */
  private readonly entries = new Map<Peer, number>()
  forgotten = 0

  constructor(private readonly peersMax: number, private readonly banAt: number) {}

  penalty(peer: Peer): number {
    return this.entries.get(peer) ?? 0
  }

  isBanned(peer: Peer): boolean {
    return this.penalty(peer) >= this.banAt
  }

  /** Adds `amount` and returns the new penalty (never above the ban threshold: nothing more is needed). */
  add(peer: Peer, amount: number): number {
    const current = this.entries.get(peer)
    if (current === undefined && this.entries.size >= this.peersMax) this.forgetLeast()
    const next = Math.min(this.banAt, (current ?? 0) + amount)
    this.entries.delete(peer)
    this.entries.set(peer, next)
    return next
  }

  get size(): number {
    return this.entries.size
  }

  get banned(): number {
    let count = 0
    for (const penalty of this.entries.values()) if (penalty >= this.banAt) count++
    return count
  }

  private forgetLeast(): void {
    let least: Peer | undefined
    let leastPenalty = Infinity
    for (const [peer, penalty] of this.entries) {
      if (penalty < leastPenalty) {
        least = peer
        leastPenalty = penalty
      }
    }
    if (least === undefined) return
    this.entries.delete(least)
    this.forgotten++
  }
}
