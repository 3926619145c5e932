/**
 * A deterministic simulated transport (DESIGN invariant 6). Many endpoints share one `SimNetwork`;
 * every delay is measured on Effect's `Clock` and every random choice comes from one generator seeded
 * with `seed`, so under `TestClock` nothing moves until the clock is adjusted and a run replays exactly
 * from its seed. `traceHash` summarises every delivery so two runs can be compared.
 *
 * Faults: per-cell loss, uniform latency, duplication and extra-delay reordering, plus controls for
 * partitions, clogged addresses and crashed endpoints. Cells in flight wait in one binary heap keyed by
 * (due time, send order) and one scheduler fiber delivers them, so there is no fiber or timer per cell.
 *
 * Like UDP, a send to an address nobody holds succeeds and the cell is dropped (and counted).
 */
import type { Scope } from "effect"
import { Clock, Duration, Effect, Layer, Mailbox } from "effect"
import * as InProcess from "./internal/inProcessNetwork.js"
import * as Prng from "./internal/prng.js"
import * as Signal from "./internal/signal.js"
import { Limits } from "./Limits.js"
import type { Address, Endpoint } from "./Transport.js"
import { kindOf, sendOf, Transport } from "./Transport.js"
import { TransportError } from "./WeftError.js"

/** The address kind of this transport (`sim:<n>` or `sim:<chosen name>`). */
export const kind = "sim"

/** A uniform one-way delay range, in whole milliseconds, drawn per cell. */
export interface LatencyRange {
  readonly minMs: number
  readonly maxMs: number
}

/** Options of a simulated network. Probabilities are in [0, 1]. */
export interface NetworkOptions {
  /** Seeds every random choice the network makes. */
  readonly seed: number
  /** Default `{ minMs: 0, maxMs: 0 }`: delivered as soon as the scheduler runs, without a clock step. */
  readonly latency?: LatencyRange
  /** Probability a cell is lost. Default 0. */
  readonly loss?: number
  /** Probability a cell is delivered twice (the copy gets its own latency). Default 0. */
  readonly duplicate?: number
  /** Probability a cell gets an extra delay, so later cells overtake it. Default 0. */
  readonly reorder?: number
  /** Upper bound of that extra delay (uniform from 1 ms). Default `max(10, 2 * latency.maxMs)`. */
  readonly reorderDelayMsMax?: number
  /** Cells in flight at once; beyond it new cells are dropped and counted. Default 65,536. */
  readonly inFlightCellsMax?: number
}

/** What the network counts, over its whole life. */
export interface NetworkStats {
  /** Cells accepted by `send` on any endpoint of the network. */
  readonly cellsSent: number
  /** Cells placed in a receiver's inbox. */
  readonly cellsDelivered: number
  /** Extra copies scheduled by `duplicate`. */
  readonly cellsDuplicated: number
  /** Cells given an extra delay by `reorder`. */
  readonly cellsDelayed: number
  readonly cellsDroppedLoss: number
  /** Cells between different partition groups. */
  readonly cellsDroppedPartition: number
  /** Cells from or to a crashed endpoint, including its inbox at the crash. */
  readonly cellsDroppedCrashed: number
  /** Cells to an address no endpoint holds when they fall due. */
  readonly cellsDroppedUnreachable: number
  readonly cellsDroppedInboxFull: number
  /** Cells that were not the receiver's `cellBytes` (endpoints with different limits). */
  readonly cellsDroppedWrongSize: number
  readonly cellsDroppedInFlightFull: number
  /** Cells now waiting in the network. */
  readonly cellsInFlight: number
}

/** A shared simulated medium and its fault controls. Controls take effect immediately, for every cell. */
export interface SimNetwork {
  readonly seed: number
  /** Addresses currently bound, in binding order. */
  readonly addresses: Effect.Effect<ReadonlyArray<Address>>
  /**
   * Splits the network: cells between addresses in different groups are dropped, when sent and when
   * due. Addresses in no group form one more group together. Replaces any earlier partition.
   */
  readonly partition: (groups: ReadonlyArray<ReadonlyArray<Address>>) => Effect.Effect<void>
  /** Ends any partition. */
  readonly heal: Effect.Effect<void>
  /**
   * Holds every cell to or from `address` (in flight or sent later) until `duration` from now, then
   * releases the held cells in the order they were sent. A later clog may extend it.
   */
  readonly clog: (address: Address, duration: Duration.DurationInput) => Effect.Effect<void>
  /**
   * The endpoint at `address` stops: its sends vanish, cells to it are dropped and its inbox is emptied.
   * It stays bound, so its `receive` stream carries on after `restart`.
   */
  readonly crash: (address: Address) => Effect.Effect<void>
  /** Undoes `crash`. */
  readonly restart: (address: Address) => Effect.Effect<void>
  /** Changes the loss probability for cells sent from now on. */
  readonly setLoss: (loss: number) => Effect.Effect<void>
  /** Changes the latency range for cells sent from now on. */
  readonly setLatency: (latency: LatencyRange) => Effect.Effect<void>
  /** Changes the duplication probability for cells sent from now on. */
  readonly setDuplicate: (duplicate: number) => Effect.Effect<void>
  /** Changes the reordering probability for cells sent from now on. */
  readonly setReorder: (reorder: number) => Effect.Effect<void>
  readonly stats: Effect.Effect<NetworkStats>
  /**
   * FNV-1a 64 (hex) over every delivery so far, in order: its time since the network was made, the
   * sender's and receiver's network indices (binding order of each address), the cell length and the
   * cell's first and last 8 bytes.
   */
  readonly traceHash: Effect.Effect<string>
}

/** Options of one endpoint. */
export interface EndpointOptions {
  /** The address to bind (`sim:<anything>`); default `sim:<n>` with n allocated by the network. */
  readonly address?: Address
}

type Slot = InProcess.Slot

interface InFlight {
  dueMs: number
  /** Send order: breaks ties between equal due times, and orders cells released by a clog. */
  readonly seq: number
  readonly from: Address
  readonly to: Address
  readonly cell: Uint8Array
}

interface Settings {
  latency: LatencyRange
  loss: number
  duplicate: number
  reorder: number
  reorderDelayMsMax: number
}

type Counters = { -readonly [K in keyof NetworkStats]: number }

interface State {
  readonly settings: Settings
  readonly inFlightCellsMax: number
  readonly random: Prng.Prng
  readonly clock: Clock.Clock
  /** Trace times are relative to this, so a run hashes the same whenever it starts. */
  readonly createdAtMs: number
  readonly slots: Map<Address, Slot>
  /** A stable small number per address ever bound, for the trace hash. */
  readonly indices: Map<Address, number>
  readonly heap: Array<InFlight>
  readonly crashed: Set<Address>
  readonly clogs: Map<Address, number>
  groups: Map<Address, number> | undefined
  seq: number
  nextNumber: number
  /** The due time the scheduler is waiting for (Infinity when idle); an earlier cell must wake it. */
  sleepingUntilMs: number
  wake: () => void
  hashHigh: number
  hashLow: number
  readonly counters: Counters
}

// Internal state per network, kept out of the public interface.
const states = new WeakMap<SimNetwork, State>()

// ---------------------------------------------------------------------------------------------------
// Binary heap on (dueMs, seq)

const before = (a: InFlight, b: InFlight): boolean => a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq)

const heapPush = (heap: Array<InFlight>, item: InFlight): void => {
  let i = heap.length
  heap.push(item)
  while (i > 0) {
    const parent = (i - 1) >> 1
    if (!before(item, heap[parent]!)) break
    heap[i] = heap[parent]!
    i = parent
  }
  heap[i] = item
}

const heapPop = (heap: Array<InFlight>): InFlight | undefined => {
  const top = heap[0]
  const last = heap.pop()
  if (top === undefined || last === undefined || heap.length === 0) return top
  let i = 0
  for (;;) {
    const left = 2 * i + 1
    if (left >= heap.length) break
    const right = left + 1
    const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left
    if (!before(heap[child]!, last)) break
    heap[i] = heap[child]!
    i = child
  }
  heap[i] = last
  return top
}

// ---------------------------------------------------------------------------------------------------
// Trace hash: FNV-1a 64 on two 32-bit halves (the prime is 2^40 + 0x1b3)

const mixByte = (state: State, byte: number): void => {
  const low = (state.hashLow ^ byte) >>> 0
  const productLow = low * 0x1b3
  const carry = Math.floor(productLow / 4294967296)
  state.hashHigh = (state.hashHigh * 0x1b3 + carry + (low << 8)) >>> 0
  state.hashLow = productLow >>> 0
}

const mixWord = (state: State, word: number): void => {
  mixByte(state, word & 0xff)
  mixByte(state, (word >>> 8) & 0xff)
  mixByte(state, (word >>> 16) & 0xff)
  mixByte(state, (word >>> 24) & 0xff)
}

const traceDelivery = (state: State, nowMs: number, item: InFlight): void => {
  const timeMs = nowMs - state.createdAtMs
  mixWord(state, timeMs >>> 0)
  mixWord(state, Math.floor(timeMs / 4294967296) >>> 0)
  mixWord(state, state.indices.get(item.from) ?? 0xffffffff)
  mixWord(state, state.indices.get(item.to) ?? 0xffffffff)
  const cell = item.cell
  mixWord(state, cell.length)
  const head = Math.min(8, cell.length)
  for (let i = 0; i < head; i++) mixByte(state, cell[i]!)
  for (let i = Math.max(head, cell.length - 8); i < cell.length; i++) mixByte(state, cell[i]!)
}

const hex32 = (n: number): string => n.toString(16).padStart(8, "0")

// ---------------------------------------------------------------------------------------------------
// Faults

const partitioned = (state: State, a: Address, b: Address): boolean => {
  const groups = state.groups
  return groups !== undefined && (groups.get(a) ?? -1) !== (groups.get(b) ?? -1)
}

/** The time until which cells between `from` and `to` are held, or 0. Expired clogs are forgotten. */
const heldUntil = (state: State, nowMs: number, from: Address, to: Address): number => {
  let until = 0
  for (const address of [from, to]) {
    const clog = state.clogs.get(address)
    if (clog === undefined) continue
    if (clog <= nowMs) state.clogs.delete(address)
    else until = Math.max(until, clog)
  }
  return until
}

// ---------------------------------------------------------------------------------------------------
// Delivery

const schedule = (state: State, item: InFlight): void => {
  heapPush(state.heap, item)
  if (item.dueMs < state.sleepingUntilMs) {
    state.sleepingUntilMs = item.dueMs
    state.wake()
  }
}

/** Puts one due cell into its receiver's inbox, or drops it and says why. */
const deliver = (state: State, nowMs: number, item: InFlight): void => {
  const counters = state.counters
  const held = heldUntil(state, nowMs, item.from, item.to)
  if (held > nowMs) {
    item.dueMs = held
    return heapPush(state.heap, item)
  }
  const slot = state.slots.get(item.to)
  if (slot === undefined) counters.cellsDroppedUnreachable++
  else if (state.crashed.has(item.to)) counters.cellsDroppedCrashed++
  else if (partitioned(state, item.from, item.to)) counters.cellsDroppedPartition++
  else {
    switch (InProcess.offer(slot, { from: item.from, cell: item.cell })) {
      case "delivered":
        counters.cellsDelivered++
        return traceDelivery(state, nowMs, item)
      case "wrongSize":
        counters.cellsDroppedWrongSize++
        return
      case "inboxFull":
        counters.cellsDroppedInboxFull++
    }
  }
}

/** Delivers every cell due by `nowMs`; returns the due time of the next one, if any. */
const deliverDue = (state: State, nowMs: number): number | undefined => {
  const heap = state.heap
  while (heap.length > 0 && heap[0]!.dueMs <= nowMs) deliver(state, nowMs, heapPop(heap)!)
  return heap[0]?.dueMs
}

/** The one scheduler fiber: deliver what is due, then sleep until the next cell or an earlier arrival. */
const runScheduler = (state: State, signal: Signal.Signal): Effect.Effect<never> =>
  Effect.suspend(() => {
    const seen = signal.seen()
    const nowMs = state.clock.unsafeCurrentTimeMillis()
    const nextMs = deliverDue(state, nowMs)
    state.sleepingUntilMs = nextMs ?? Infinity
    const wait = signal.wait(seen)
    return nextMs === undefined ? wait : Effect.raceFirst(state.clock.sleep(Duration.millis(nextMs - nowMs)), wait)
  }).pipe(Effect.forever)

// ---------------------------------------------------------------------------------------------------
// Sending

const drawDelayMs = (state: State): number => {
  const { latency, reorder, reorderDelayMsMax } = state.settings
  let delay = latency.minMs === latency.maxMs ? latency.minMs : state.random.nextInt(latency.minMs, latency.maxMs)
  if (reorder > 0 && state.random.nextFloat() < reorder) {
    state.counters.cellsDelayed++
    delay += state.random.nextInt(1, reorderDelayMsMax)
  }
  return delay
}

const enqueue = (state: State, nowMs: number, from: Address, to: Address, cell: Uint8Array): void => {
  if (state.heap.length >= state.inFlightCellsMax) {
    state.counters.cellsDroppedInFlightFull++
    return
  }
  const dueMs = Math.max(nowMs + drawDelayMs(state), heldUntil(state, nowMs, from, to))
  schedule(state, { dueMs, seq: state.seq++, from, to, cell: new Uint8Array(cell) })
}

/** Applies the faults to one validated cell and schedules its delivery (and maybe a duplicate). */
const transmit = (state: State, from: Address, to: Address, cell: Uint8Array): void => {
  const counters = state.counters
  counters.cellsSent++
  if (state.crashed.has(from)) return void counters.cellsDroppedCrashed++
  if (partitioned(state, from, to)) return void counters.cellsDroppedPartition++
  const { loss, duplicate } = state.settings
  if (loss > 0 && state.random.nextFloat() < loss) return void counters.cellsDroppedLoss++
  const nowMs = state.clock.unsafeCurrentTimeMillis()
  enqueue(state, nowMs, from, to, cell)
  if (duplicate > 0 && state.random.nextFloat() < duplicate) {
    counters.cellsDuplicated++
    enqueue(state, nowMs, from, to, cell)
  }
}

const validateSend = (cellBytes: number, to: Address, cell: Uint8Array): TransportError | undefined => {
  if (cell.length !== cellBytes) {
    return new TransportError({ reason: "CellSize", detail: `cell of ${cell.length} bytes, expected ${cellBytes}` })
  }
  if (kindOf(to) !== kind) return new TransportError({ reason: "BadAddress", detail: `not a ${kind} address: ${to}` })
  return undefined
}

// ---------------------------------------------------------------------------------------------------
// The network

const checkProbability = (name: string, p: number): Effect.Effect<void> =>
  p >= 0 && p <= 1 ? Effect.void : Effect.dieMessage(`TransportSim: ${name} ${p} is not in [0, 1]`)

const checkLatency = (latency: LatencyRange): Effect.Effect<void> =>
  Number.isInteger(latency.minMs) && Number.isInteger(latency.maxMs) && latency.minMs >= 0 &&
    latency.minMs <= latency.maxMs ?
    Effect.void :
    Effect.dieMessage(`TransportSim: latency ${JSON.stringify(latency)} is not whole milliseconds with min <= max`)

const makeSettings = (options: NetworkOptions): Effect.Effect<Settings> => {
  const latency = options.latency ?? { minMs: 0, maxMs: 0 }
  const settings: Settings = {
    latency,
    loss: options.loss ?? 0,
    duplicate: options.duplicate ?? 0,
    reorder: options.reorder ?? 0,
    reorderDelayMsMax: options.reorderDelayMsMax ?? Math.max(10, 2 * latency.maxMs)
  }
  return Effect.all([
    checkLatency(latency),
    checkProbability("loss", settings.loss),
    checkProbability("duplicate", settings.duplicate),
    checkProbability("reorder", settings.reorder),
    Number.isInteger(settings.reorderDelayMsMax) && settings.reorderDelayMsMax >= 1 ?
      Effect.void :
      Effect.dieMessage("TransportSim: reorderDelayMsMax must be a whole number of milliseconds >= 1")
  ]).pipe(Effect.as(settings))
}

const zeroCounters = (): Counters => ({
  cellsSent: 0,
  cellsDelivered: 0,
  cellsDuplicated: 0,
  cellsDelayed: 0,
  cellsDroppedLoss: 0,
  cellsDroppedPartition: 0,
  cellsDroppedCrashed: 0,
  cellsDroppedUnreachable: 0,
  cellsDroppedInboxFull: 0,
  cellsDroppedWrongSize: 0,
  cellsDroppedInFlightFull: 0,
  cellsInFlight: 0
})

const crash = (state: State, address: Address): Effect.Effect<void> =>
  Effect.suspend(() => {
    state.crashed.add(address)
    const slot = state.slots.get(address)
    if (slot === undefined) return Effect.void
    return Effect.map(slot.inbox.clear, (lost) => {
      state.counters.cellsDroppedCrashed += lost.length
    })
  })

const set = (check: Effect.Effect<void>, apply: () => unknown): Effect.Effect<void> =>
  Effect.zipRight(check, Effect.sync(() => void apply()))

const makeControls = (state: State, seed: number): SimNetwork => ({
  seed,
  addresses: Effect.sync(() => Array.from(state.slots.keys())),
  partition: (groups) =>
    Effect.sync(() => {
      state.groups = new Map(groups.flatMap((group, index) => group.map((address) => [address, index] as const)))
    }),
  heal: Effect.sync(() => {
    state.groups = undefined
  }),
  clog: (address, duration) =>
    Effect.sync(() => {
      const until = state.clock.unsafeCurrentTimeMillis() + Math.ceil(Duration.toMillis(Duration.decode(duration)))
      state.clogs.set(address, Math.max(until, state.clogs.get(address) ?? 0))
    }),
  crash: (address) => crash(state, address),
  restart: (address) => Effect.sync(() => void state.crashed.delete(address)),
  setLoss: (loss) => set(checkProbability("loss", loss), () => state.settings.loss = loss),
  setLatency: (latency) => set(checkLatency(latency), () => state.settings.latency = latency),
  setDuplicate: (duplicate) => set(checkProbability("duplicate", duplicate), () => state.settings.duplicate = duplicate),
  setReorder: (reorder) => set(checkProbability("reorder", reorder), () => state.settings.reorder = reorder),
  stats: Effect.sync(() => ({ ...state.counters, cellsInFlight: state.heap.length })),
  traceHash: Effect.sync(() => hex32(state.hashHigh) + hex32(state.hashLow))
})

/**
 * Creates a network and starts its scheduler fiber in the current scope. Time is the `Clock` in place
 * here (the `TestClock` inside `it.effect`/`it.scoped`), randomness is `seed` alone.
 */
export const makeNetwork = (options: NetworkOptions): Effect.Effect<SimNetwork, never, Scope.Scope> =>
  Effect.gen(function*() {
    const settings = yield* makeSettings(options)
    const signal = Signal.make()
    const clock = yield* Effect.clock
    const state: State = {
      settings,
      inFlightCellsMax: options.inFlightCellsMax ?? 65_536,
      random: Prng.make(options.seed),
      clock,
      createdAtMs: clock.unsafeCurrentTimeMillis(),
      slots: new Map(),
      indices: new Map(),
      heap: [],
      crashed: new Set(),
      clogs: new Map(),
      groups: undefined,
      seq: 0,
      nextNumber: 0,
      sleepingUntilMs: Infinity,
      wake: signal.notify,
      hashHigh: 0xcbf29ce4,
      hashLow: 0x84222325,
      counters: zeroCounters()
    }
    yield* Effect.forkScoped(runScheduler(state, signal))
    const network = makeControls(state, options.seed)
    states.set(network, state)
    return network
  })

const stateOf = (network: SimNetwork): State => {
  const state = states.get(network)
  if (state === undefined) throw new Error("TransportSim: not a network made by TransportSim.makeNetwork")
  return state
}

// ---------------------------------------------------------------------------------------------------
// Endpoints

const allocateAddress = (state: State, requested: Address | undefined): Effect.Effect<Address, TransportError> =>
  InProcess.allocate(kind, state, requested)

const bind = (state: State, address: Address, slot: Slot): Effect.Effect<void, never, Scope.Scope> => {
  state.slots.set(address, slot)
  if (!state.indices.has(address)) state.indices.set(address, state.indices.size)
  return Effect.addFinalizer(() =>
    Effect.suspend(() => {
      if (state.slots.get(address) === slot) state.slots.delete(address)
      return slot.inbox.shutdown
    })
  )
}

/**
 * Binds an endpoint on `network`. `capabilities` reflect the network's settings at this moment.
 * Closing the scope unbinds the address (cells to it are then dropped; it may be bound again),
 * discards queued inbound cells and ends `receive`.
 */
export const make = (
  network: SimNetwork,
  options: EndpointOptions = {}
): Effect.Effect<Endpoint, TransportError, Scope.Scope | Limits> =>
  Effect.gen(function*() {
    const state = stateOf(network)
    const limits = yield* Limits
    const address = yield* allocateAddress(state, options.address)
    const slot = yield* InProcess.makeSlot(limits)
    const inbox = slot.inbox
    let sent = 0
    yield* bind(state, address, slot)
    const { latency, loss, reorder } = state.settings
    const unsafeSend = (to: Address, cell: Uint8Array): TransportError | undefined => {
      const error = state.slots.get(address) === slot ?
        validateSend(slot.cellBytes, to, cell) :
        new TransportError({ reason: "Closed", detail: address })
      if (error !== undefined) return error
      sent++
      transmit(state, address, to, cell)
      return undefined
    }
    return {
      kind,
      address,
      capabilities: {
        reliable: loss === 0,
        ordered: latency.minMs === latency.maxMs && reorder === 0,
        cellBytes: limits.cellBytes
      },
      send: sendOf(unsafeSend),
      unsafeSend,
      receive: Mailbox.toStream(inbox),
      stats: InProcess.statsOf(slot, () => sent)
    } satisfies Endpoint
  })

/** The `Transport` service as one endpoint on `network`, released with the layer. */
export const layer = (
  network: SimNetwork,
  options: EndpointOptions = {}
): Layer.Layer<Transport, TransportError, Limits> =>
  Layer.scoped(Transport, make(network, options))
