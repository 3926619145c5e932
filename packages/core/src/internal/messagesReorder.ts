/**
 * Per-peer receive ordering: for each stream, the next expected sequence number and a bounded buffer of
 * envelopes that arrived early. Plain data and callbacks: it runs once per inbound envelope.
 */
import type { Envelope } from "../Envelope.js"

/** Counters the reorder tables share with the message layer's stats. */
export interface ReorderCounters {
  duplicatesDropped: number
  gapsSkipped: number
}

/** Receives envelopes in order. */
export type Deliver = (envelope: Envelope) => void

/** The receive state of one stream. */
class StreamState {
  next = 0
  readonly held = new Map<number, { readonly envelope: Envelope; readonly atMs: number }>()
  /** When the gap at `next` became visible: the earliest arrival among the held envelopes. */
  gapSinceMs = 0
  constructor(readonly stream: number) {}
}

/** The receive states of one peer's streams, least recently used first. */
export class ReorderTable {
  private readonly streams = new Map<number, StreamState>()
  /** Streams holding early envelopes, scanned by `skipStale`. */
  private readonly gapped = new Set<StreamState>()
  private heldCount = 0
  private newest: StreamState | undefined = undefined

  constructor(
    private readonly windowMessages: number,
    private readonly streamsMax: number,
    private readonly counters: ReorderCounters
  ) {}

  /** Streams tracked. */
  get size(): number {
    return this.streams.size
  }

  /** Envelopes held out of order, over all streams. */
  get held(): number {
    return this.heldCount
  }

  /**
   * Takes one inbound envelope: delivers it (and whatever it unblocks) if it is next, holds it if early,
   * drops it if already seen. A full window skips the oldest gap rather than dropping new input.
   */
  accept(envelope: Envelope, nowMs: number, deliver: Deliver): void {
    const state = this.touch(envelope.stream)
    if (envelope.seq < state.next || state.held.has(envelope.seq)) {
      this.counters.duplicatesDropped++
      return
    }
    if (envelope.seq === state.next) {
      state.next++
      deliver(envelope)
      this.drain(state, deliver)
      return
    }
    if (state.held.size === 0) {
      state.gapSinceMs = nowMs
      this.gapped.add(state)
    }
    state.held.set(envelope.seq, { envelope, atMs: nowMs })
    this.heldCount++
    while (state.held.size > this.windowMessages && this.isCurrent(state)) this.skipGap(state, deliver)
  }

  /** Skips every gap that has been visible for at least `timeoutMs` (several per stream if need be). */
  skipStale(nowMs: number, timeoutMs: number, deliver: Deliver): void {
    for (const state of this.gapped) {
      while (state.held.size > 0 && nowMs - state.gapSinceMs >= timeoutMs && this.isCurrent(state)) {
        this.skipGap(state, deliver)
      }
    }
  }

  /** Forgets one stream (its channel closed). */
  forget(stream: number): void {
    const state = this.streams.get(stream)
    if (state !== undefined) this.drop(state)
  }

  /** Forgets everything (the session ended). */
  clear(): void {
    for (const state of this.streams.values()) this.drop(state)
  }

  private touch(stream: number): StreamState {
    let state = this.streams.get(stream)
    if (state !== undefined) {
      // Re-inserting moves the stream to the most recently used end of the Map's order; skipped for the
      // stream already there (the common case, one busy stream), as delete/set churn is not free.
      if (this.newest !== state) {
        this.streams.delete(stream)
        this.streams.set(stream, state)
        this.newest = state
      }
      return state
    }
    state = new StreamState(stream)
    this.streams.set(stream, state)
    this.newest = state
    if (this.streams.size > this.streamsMax) {
      const oldest = this.streams.values().next().value
      if (oldest !== undefined) this.drop(oldest)
    }
    return state
  }

  private skipGap(state: StreamState, deliver: Deliver): void {
    let lowest = Number.POSITIVE_INFINITY
    for (const seq of state.held.keys()) if (seq < lowest) lowest = seq
    if (lowest === Number.POSITIVE_INFINITY) return
    state.next = lowest
    this.counters.gapsSkipped++
    this.drain(state, deliver)
  }

  private drain(state: StreamState, deliver: Deliver): void {
    let moved = false
    for (let next = state.held.get(state.next); next !== undefined; next = state.held.get(state.next)) {
      state.held.delete(state.next)
      this.heldCount--
      state.next++
      moved = true
      deliver(next.envelope)
      // A delivery may close the stream's channel, which forgets this state.
      if (!this.isCurrent(state)) return
    }
    if (state.held.size === 0) this.gapped.delete(state)
    else if (moved) state.gapSinceMs = earliestArrival(state)
  }

  private isCurrent(state: StreamState): boolean {
    return this.streams.get(state.stream) === state
  }

  private drop(state: StreamState): void {
    this.heldCount -= state.held.size
    state.held.clear()
    this.gapped.delete(state)
    this.streams.delete(state.stream)
    if (this.newest === state) this.newest = undefined
  }
}

const earliestArrival = (state: StreamState): number => {
  let earliest = Number.POSITIVE_INFINITY
  for (const { atMs } of state.held.values()) if (atMs < earliest) earliest = atMs
  return earliest
}
