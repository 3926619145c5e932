/**
 * An in-process transport: endpoints joined to one `MemoryNetwork` exchange cells through bounded
 * inboxes, in real time (or under whatever `Clock` made the network). For unit tests and for several
 * nodes in one process; `TransportSim` is the deterministic, fault-injecting variant.
 *
 * Semantics, chosen to match UDP so code above behaves the same on both:
 * - a send to an address nobody holds (never bound, or closed) succeeds and the cell is dropped
 *   silently (counted in the network's `cellsDroppedUnreachable`), as a datagram to a closed port is;
 * - a cell is copied on send, so the sender may reuse its buffer at once;
 * - with no latency a cell reaches the receiver's inbox during `send`; with a latency, one fiber per
 *   network delivers cells in send order when they fall due (no fiber or timer per cell).
 */
import type { Scope } from "effect"
import { Clock, Duration, Effect, Layer, Mailbox, Random } from "effect"
import * as InProcess from "./internal/inProcessNetwork.js"
import * as Prng from "./internal/prng.js"
import * as Signal from "./internal/signal.js"
import { Limits } from "./Limits.js"
import type { Address, Datagram, Endpoint } from "./Transport.js"
import { kindOf, sendOf, Transport } from "./Transport.js"
import { TransportError } from "./WeftError.js"

/** The address kind of this transport (`mem:<n>` or `mem:<chosen name>`). */
export const kind = "mem"

/** Options of a memory network. */
export interface NetworkOptions {
  /** Fixed one-way delay of every cell. Default 0: the cell is delivered during `send`. */
  readonly latency?: Duration.DurationInput
  /** Probability in [0, 1] that a cell is silently lost. Default 0 (the network is then reliable). */
  readonly loss?: number
  /**
   * Cells the network holds in flight at once (only with a latency); beyond it new cells are dropped
   * and counted. Default 65,536. A network option, not a node limit: one network carries many nodes.
   */
  readonly inFlightCellsMax?: number
}

/** What the network itself counts (per-endpoint counters live in each endpoint's `stats`). */
export interface NetworkStats {
  readonly cellsDelivered: number
  /** Cells sent to an address no endpoint holds. */
  readonly cellsDroppedUnreachable: number
  /** Cells lost to the configured `loss`. */
  readonly cellsDroppedLoss: number
  /** Cells dropped because `inFlightCellsMax` cells were already in flight. */
  readonly cellsDroppedInFlightFull: number
  /** Cells accepted but not yet due (only with a latency). */
  readonly cellsInFlight: number
}

/** A shared in-process medium that endpoints join with `make` or `layer`. */
export interface MemoryNetwork {
  readonly latency: Duration.Duration
  readonly loss: number
  /** Addresses currently bound, in binding order. */
  readonly addresses: Effect.Effect<ReadonlyArray<Address>>
  readonly stats: Effect.Effect<NetworkStats>
}

/** Options of one endpoint. */
export interface EndpointOptions {
  /** The address to bind (`mem:<anything>`); default `mem:<n>` with n allocated by the network. */
  readonly address?: Address
}

type Slot = InProcess.Slot

interface InFlight {
  readonly dueMs: number
  readonly to: Address
  readonly datagram: Datagram
}

interface State {
  readonly latencyMs: number
  readonly loss: number
  readonly inFlightCellsMax: number
  readonly random: Prng.Prng
  readonly clock: Clock.Clock
  readonly slots: Map<Address, Slot>
  /** FIFO of cells in flight; with one fixed latency, send order is due order. */
  readonly queue: Array<InFlight>
  queueHead: number
  nextNumber: number
  wake: () => void
  cellsDelivered: number
  cellsDroppedUnreachable: number
  cellsDroppedLoss: number
  cellsDroppedInFlightFull: number
}

// Internal state per network, kept out of the public interface.
const states = new WeakMap<MemoryNetwork, State>()

const deliver = (state: State, to: Address, datagram: Datagram): void => {
  const slot = state.slots.get(to)
  if (slot === undefined) state.cellsDroppedUnreachable++
  else if (InProcess.offer(slot, datagram) === "delivered") state.cellsDelivered++
}

/** Delivers every due cell; returns the due time of the next one, if any. */
const deliverDue = (state: State, nowMs: number): number | undefined => {
  const queue = state.queue
  while (state.queueHead < queue.length) {
    const next = queue[state.queueHead]!
    if (next.dueMs > nowMs) return next.dueMs
    state.queueHead++
    deliver(state, next.to, next.datagram)
    if (state.queueHead >= 1024 && state.queueHead * 2 >= queue.length) {
      queue.splice(0, state.queueHead) // compact, so a never-empty queue does not grow without bound
      state.queueHead = 0
    }
  }
  queue.length = 0
  state.queueHead = 0
  return undefined
}

/** The one delivery fiber of a network with latency: sleeps until the head of the FIFO is due. */
const runDeliveries = (state: State, signal: Signal.Signal): Effect.Effect<never> =>
  Effect.suspend(() => {
    const seen = signal.seen()
    const nowMs = state.clock.unsafeCurrentTimeMillis()
    const nextMs = deliverDue(state, nowMs)
    return nextMs === undefined ? signal.wait(seen) : state.clock.sleep(Duration.millis(nextMs - nowMs))
  }).pipe(Effect.forever)

/**
 * Creates a network. Its loss draws come from a generator seeded from Effect's `Random`, and its
 * latency from the `Clock` in place here, so under `TestClock` cells move only when the clock does.
 */
export const makeNetwork = (options: NetworkOptions = {}): Effect.Effect<MemoryNetwork, never, Scope.Scope> =>
  Effect.gen(function*() {
    const latency = Duration.decode(options.latency ?? Duration.zero)
    const loss = options.loss ?? 0
    if (!(loss >= 0 && loss <= 1)) return yield* Effect.dieMessage(`TransportMemory: loss ${loss} is not in [0, 1]`)
    const signal = Signal.make()
    const state: State = {
      latencyMs: Duration.toMillis(latency),
      loss,
      inFlightCellsMax: options.inFlightCellsMax ?? 65_536,
      random: Prng.make(yield* Random.nextIntBetween(0, 2 ** 31)),
      clock: yield* Effect.clock,
      slots: new Map(),
      queue: [],
      queueHead: 0,
      nextNumber: 0,
      wake: signal.notify,
      cellsDelivered: 0,
      cellsDroppedUnreachable: 0,
      cellsDroppedLoss: 0,
      cellsDroppedInFlightFull: 0
    }
    if (state.latencyMs > 0) yield* Effect.forkScoped(runDeliveries(state, signal))
    const network: MemoryNetwork = {
      latency,
      loss,
      addresses: Effect.sync(() => Array.from(state.slots.keys())),
      stats: Effect.sync(() => ({
        cellsDelivered: state.cellsDelivered,
        cellsDroppedUnreachable: state.cellsDroppedUnreachable,
        cellsDroppedLoss: state.cellsDroppedLoss,
        cellsDroppedInFlightFull: state.cellsDroppedInFlightFull,
        cellsInFlight: state.queue.length - state.queueHead
      }))
    }
    states.set(network, state)
    return network
  })

const stateOf = (network: MemoryNetwork): State => {
  const state = states.get(network)
  if (state === undefined) throw new Error("TransportMemory: not a network made by TransportMemory.makeNetwork")
  return state
}

const allocateAddress = (state: State, requested: Address | undefined): Effect.Effect<Address, TransportError> =>
  InProcess.allocate(kind, state, requested)

/** Hands one validated cell to the network (copying it): lost, delivered now, or queued until due. */
const transmit = (state: State, from: Address, to: Address, cell: Uint8Array): void => {
  if (state.loss > 0 && state.random.nextFloat() < state.loss) {
    state.cellsDroppedLoss++
    return
  }
  if (state.latencyMs === 0) return deliver(state, to, { from, cell: new Uint8Array(cell) })
  if (state.queue.length - state.queueHead >= state.inFlightCellsMax) {
    state.cellsDroppedInFlightFull++
    return
  }
  if (state.queueHead === state.queue.length) state.wake()
  const datagram: Datagram = { from, cell: new Uint8Array(cell) }
  state.queue.push({ dueMs: state.clock.unsafeCurrentTimeMillis() + state.latencyMs, to, datagram })
}

const makeUnsafeSend = (state: State, address: Address, slot: Slot, isClosed: () => boolean, counters: { sent: number }) =>
(to: Address, cell: Uint8Array): TransportError | undefined => {
  if (isClosed()) return new TransportError({ reason: "Closed", detail: address })
  if (cell.length !== slot.cellBytes) {
    return new TransportError({ reason: "CellSize", detail: `cell of ${cell.length} bytes, expected ${slot.cellBytes}` })
  }
  if (kindOf(to) !== kind) return new TransportError({ reason: "BadAddress", detail: `not a ${kind} address: ${to}` })
  counters.sent++
  transmit(state, address, to, cell)
  return undefined
}

/**
 * Binds an endpoint on `network`. Closing the scope unbinds the address (later sends to it are
 * dropped, and it may be bound again), discards queued inbound cells and ends `receive`.
 */
export const make = (
  network: MemoryNetwork,
  options: EndpointOptions = {}
): Effect.Effect<Endpoint, TransportError, Scope.Scope | Limits> =>
  Effect.gen(function*() {
    const state = stateOf(network)
    const limits = yield* Limits
    const address = yield* allocateAddress(state, options.address)
    const slot = yield* InProcess.makeSlot(limits)
    const inbox = slot.inbox
    let closed = false
    const counters = { sent: 0 }
    state.slots.set(address, slot)
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        closed = true
        if (state.slots.get(address) === slot) state.slots.delete(address)
        return inbox.shutdown
      })
    )
    const unsafeSend = makeUnsafeSend(state, address, slot, () => closed, counters)
    return {
      kind,
      address,
      capabilities: { reliable: state.loss === 0, ordered: true, cellBytes: limits.cellBytes },
      send: sendOf(unsafeSend),
      unsafeSend,
      receive: Mailbox.toStream(inbox),
      stats: InProcess.statsOf(slot, () => counters.sent)
    } satisfies Endpoint
  })

/** The `Transport` service as one endpoint on `network`, released with the layer. */
export const layer = (
  network: MemoryNetwork,
  options: EndpointOptions = {}
): Layer.Layer<Transport, TransportError, Limits> =>
  Layer.scoped(Transport, make(network, options))
