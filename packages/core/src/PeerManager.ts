/**
 * Peer management: keeps a node between `peersLowWatermark` and `peersHighWatermark` sessions. It
 * bootstraps from seed addresses, learns more by peer exchange (asking one peer at a time for the
 * addresses of its peers), dials from a bounded address book with exponential backoff per address, and
 * closes sessions above the high mark.
 *
 * It never dials an address that is connected or being dialed (and `Link.dial` joins a dial already in
 * progress), and it dials at most as many addresses at once as the node is short of its low mark, so
 * a dead or flapping peer can never cause a dial storm, and the one-session-per-peer invariant holds.
 *
 * Add it to a node build: `PeerManager.layer({ seeds }).pipe(Layer.provideMerge(Node.layer(…)))`.
 */
import type { Scope } from "effect"
import { Context, Duration, Effect, Layer, Random, Schedule, Schema } from "effect"
import { Link, type SessionInfo } from "./Link.js"
import type { Values } from "./Limits.js"
import { Limits } from "./Limits.js"
import { Messages } from "./Messages.js"
import type { Address } from "./Transport.js"
import { kindOf } from "./Transport.js"

/** The message-layer tag of peer exchange. */
export const exchangeTag = "weft/peers"

/** Options of `layer`. */
export interface Options {
  /** Addresses to bootstrap from; never forgotten, retried with backoff. */
  readonly seeds?: ReadonlyArray<Address> | undefined
  /** How often the manager looks at the node's sessions (default 1 s). */
  readonly interval?: Duration.DurationInput | undefined
  /** Ask a peer for addresses every this many intervals (default 5; at once while short of peers). */
  readonly exchangeEvery?: number | undefined
}

/** What the manager counts and holds. */
export interface Stats {
  readonly book: number
  readonly dialing: number
  readonly dials: number
  readonly dialFailures: number
  /** Sessions closed to get down to the high watermark. */
  readonly trimmed: number
  /** Addresses learned by peer exchange. */
  readonly learned: number
  /** Addresses forgotten because the book was full. */
  readonly forgotten: number
  readonly exchanges: number
  /** Peer-exchange replies that failed (timeout, refusal, a reply that did not decode). */
  readonly exchangesFailed: number
}

/** The node's peer manager. */
export class PeerManager extends Context.Tag("@weft/core/PeerManager")<PeerManager, {
  /** The address book: each address, whether it is a seed, its consecutive failures. */
  readonly book: Effect.Effect<ReadonlyArray<{ readonly address: Address; readonly seed: boolean; readonly failures: number }>>
  readonly stats: Effect.Effect<Stats>
}>() {}

interface Entry {
  readonly address: Address
  readonly seed: boolean
  readonly addedAtMs: number
  failures: number
  nextDialAtMs: number
}

interface State {
  readonly limits: Values
  readonly book: Map<Address, Entry>
  readonly dialing: Set<Address>
  counters: { -readonly [K in Exclude<keyof Stats, "book" | "dialing">]: number }
}

// Longest address text accepted from a peer (the UDP transport's own bound is 80).
const addressCharsMax = 128

const addressesSchema = (limits: Values) =>
  Schema.Array(Schema.String.pipe(Schema.maxLength(addressCharsMax))).pipe(Schema.maxItems(limits.peerExchangeAddressesMax))

/** The entry to forget when the book is full: the non-seed that failed most, then the oldest. */
const evictable = (state: State): Entry | undefined => {
  let worst: Entry | undefined
  for (const entry of state.book.values()) {
    if (entry.seed) continue
    if (worst === undefined || entry.failures > worst.failures || (entry.failures === worst.failures && entry.addedAtMs < worst.addedAtMs)) {
      worst = entry
    }
  }
  return worst
}

const remember = (state: State, address: Address, seed: boolean, nowMs: number): void => {
  if (state.book.has(address)) return
  if (state.book.size >= state.limits.peerBookEntriesMax) {
    const victim = evictable(state)
    if (victim === undefined) return
    state.book.delete(victim.address)
    state.counters.forgotten++
  }
  state.book.set(address, { address, seed, addedAtMs: nowMs, failures: 0, nextDialAtMs: nowMs })
}

const backoffMs = (limits: Values, failures: number): number =>
  Math.min(Duration.toMillis(limits.dialBackoffMax), Duration.toMillis(limits.dialBackoffMin) * 2 ** Math.min(failures - 1, 30))

/** Shuffles in place with the node's `Random` (seeded in a simulation). */
const shuffled = <A>(items: Array<A>): Effect.Effect<Array<A>> =>
  Effect.map(Random.shuffle(items), (chunk) => Array.from(chunk))

/** Builds the manager for as long as the scope lives. */
export const make = (options: Options = {}): Effect.Effect<Context.Tag.Service<PeerManager>, never, Link | Messages | Limits | Scope.Scope> =>
  Effect.gen(function*() {
    const link = yield* Link
    const messages = yield* Messages
    const limits = yield* Limits
    const clock = yield* Effect.clock
    const scope = yield* Effect.scope
    const kind = kindOf(link.address)
    const state: State = {
      limits,
      book: new Map(),
      dialing: new Set(),
      counters: { dials: 0, dialFailures: 0, trimmed: 0, learned: 0, forgotten: 0, exchanges: 0, exchangesFailed: 0 }
    }
    const now = () => clock.unsafeCurrentTimeMillis()
    for (const seed of options.seeds ?? []) if (seed !== link.address) remember(state, seed, true, now())
    const addresses = addressesSchema(limits)

    const dial = (entry: Entry): Effect.Effect<void> =>
      Effect.suspend(() => {
        state.dialing.add(entry.address)
        state.counters.dials++
        return link.dial(entry.address).pipe(
          Effect.matchEffect({
            onSuccess: () => Effect.sync(() => void (entry.failures = 0)),
            onFailure: () =>
              Effect.sync(() => {
                state.counters.dialFailures++
                entry.failures++
                entry.nextDialAtMs = now() + backoffMs(limits, entry.failures)
              })
          }),
          Effect.ensuring(Effect.sync(() => void state.dialing.delete(entry.address)))
        )
      })

    /** Dials as many eligible addresses as the node is short of its low mark, minus dials in progress. */
    const fill = (connected: ReadonlySet<Address>, sessions: number) =>
      Effect.gen(function*() {
        const wanted = limits.peersLowWatermark - sessions - state.dialing.size
        if (wanted <= 0) return
        const nowMs = now()
        const eligible = Array.from(state.book.values()).filter((entry) =>
          !connected.has(entry.address) && !state.dialing.has(entry.address) && entry.nextDialAtMs <= nowMs
        )
        for (const entry of (yield* shuffled(eligible)).slice(0, wanted)) yield* Effect.forkIn(dial(entry), scope)
      })

    /** Closes sessions above the high mark: the ones the peer dialed first, then others. */
    const trim = (peers: ReadonlyArray<{ readonly remote: Address; readonly initiator: boolean }>) =>
      Effect.gen(function*() {
        const excess = peers.length - limits.peersHighWatermark
        if (excess <= 0) return
        const accepted = yield* shuffled(peers.filter((peer) => !peer.initiator))
        const dialed = yield* shuffled(peers.filter((peer) => peer.initiator))
        for (const peer of [...accepted, ...dialed].slice(0, excess)) {
          // The session exists, so `dial` returns it at once (no handshake).
          const session = yield* Effect.option(link.dial(peer.remote))
          if (session._tag === "Some") {
            yield* session.value.close
            state.counters.trimmed++
          }
        }
      })

    /** Asks one random peer for the addresses of its peers. */
    const exchange = (peers: ReadonlyArray<SessionInfo>) =>
      Effect.gen(function*() {
        if (peers.length === 0) return
        const [target] = yield* shuffled([...peers])
        state.counters.exchanges++
        const reply = yield* messages.call(target!.peer, exchangeTag, null).pipe(
          Effect.flatMap(Schema.decodeUnknown(addresses)),
          Effect.option
        )
        if (reply._tag === "None") return void state.counters.exchangesFailed++
        for (const address of reply.value) {
          if (address === link.address || kindOf(address) !== kind || state.book.has(address)) continue
          remember(state, address, false, now())
          if (state.book.has(address)) state.counters.learned++
        }
      })

    let ticks = 0
    const tick = Effect.gen(function*() {
      const peers = yield* link.peers
      const connected = new Set(peers.map((peer) => peer.remote))
      const nowMs = now()
      for (const peer of peers) remember(state, peer.remote, false, nowMs)
      yield* fill(connected, peers.length)
      yield* trim(peers)
      const short = peers.length < limits.peersLowWatermark
      if (short || ++ticks % (options.exchangeEvery ?? 5) === 0) yield* exchange(peers)
    })
    yield* Effect.forkScoped(Effect.repeat(tick, Schedule.spaced(options.interval ?? "1 second")))

    // Peer exchange, served: a sample of this node's peers (not the asker itself).
    yield* messages.handle(exchangeTag, { body: Schema.Unknown, reply: addresses }, (incoming) =>
      Effect.gen(function*() {
        const peers = (yield* link.peers).filter((peer) => peer.peer !== incoming.peer).map((peer) => peer.remote)
        return (yield* shuffled(peers)).slice(0, limits.peerExchangeAddressesMax)
      }))

    return {
      book: Effect.sync(() => Array.from(state.book.values(), (e) => ({ address: e.address, seed: e.seed, failures: e.failures }))),
      stats: Effect.sync((): Stats => ({ ...state.counters, book: state.book.size, dialing: state.dialing.size }))
    }
  })

/** The peer manager as a layer over the node's link and message layer. */
export const layer = (options: Options = {}): Layer.Layer<PeerManager, never, Link | Messages | Limits> =>
  Layer.scoped(PeerManager, make(options))
