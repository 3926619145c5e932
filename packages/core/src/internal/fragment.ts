/**
 * Frames ⇄ cells: cutting a frame into fixed-size cells and reassembling it on the far side, with
 * every table bounded. This is the per-cell hot path, so it is plain code over buffers: no Effect,
 * no fiber, no allocation before a cell's header has been checked.
 *
 * A cell is exactly `cellBytes` long (all integers big-endian):
 *
 * | offset | size | field |
 * |---|---|---|
 * | 0 | 4 | frame id (u32, chosen by the sender, unique among its recent frames) |
 * | 4 | 2 | index of this cell in the frame (u16) |
 * | 6 | 2 | number of cells in the frame (u16, ≥ 1) |
 * | 8 | 2 | payload length (u16) |
 * | 10 | … | payload, then zero padding to `cellBytes` |
 *
 * Every cell but the last carries a full payload, so a frame has exactly one cutting and a
 * receiver can reject any other as inconsistent.
 */
import { pooled } from "./bytes.js"

/** Bytes of header at the start of every cell. */
export const headerBytes = 10

/** Payload bytes one cell carries. */
export const payloadBytes = (cellBytes: number): number => cellBytes - headerBytes

/** Number of cells a frame of `frameLength` bytes is cut into. */
export const cellsFor = (frameLength: number, cellBytes: number): number =>
  Math.max(1, Math.ceil(frameLength / payloadBytes(cellBytes)))

/** Cuts a frame into cells of exactly `cellBytes`. The caller bounds the frame's length. */
export const cut = (frame: Uint8Array, frameId: number, cellBytes: number): Array<Uint8Array> => {
  const room = payloadBytes(cellBytes)
  const count = cellsFor(frame.length, cellBytes)
  if (room <= 0 || count > 0xffff) throw new Error(`fragment.cut: ${frame.length} bytes do not fit cells of ${cellBytes}`)
  const cells: Array<Uint8Array> = []
  for (let index = 0; index < count; index++) {
    const payload = frame.subarray(index * room, Math.min(frame.length, (index + 1) * room))
    // Pooled and uninitialised, so every byte is written: header, payload, then zeros to the end.
    const cell = pooled(cellBytes)
    cell[0] = frameId >>> 24
    cell[1] = frameId >>> 16
    cell[2] = frameId >>> 8
    cell[3] = frameId
    cell[4] = index >>> 8
    cell[5] = index
    cell[6] = count >>> 8
    cell[7] = count
    cell[8] = payload.length >>> 8
    cell[9] = payload.length
    cell.set(payload, headerBytes)
    cell.fill(0, headerBytes + payload.length)
    cells.push(cell)
  }
  return cells
}

/** The bounds a reassembler works within. */
export interface ReassemblerOptions {
  readonly cellBytes: number
  /** Largest frame accepted; a cell implying a larger one is rejected before anything is allocated. */
  readonly frameBytesMax: number
  /** Partial frames kept per sender address; the oldest is dropped past it. */
  readonly partialsPerAddressMax: number
  /** Sender addresses with reassembly state; the least recently active is dropped past it. */
  readonly addressesMax: number
  /** A partial frame older than this is dropped. */
  readonly timeoutMs: number
}

/** What a reassembler has counted. */
export interface ReassemblerStats {
  /** Cells rejected as malformed or inconsistent with the frame they claim to belong to. */
  readonly cellsRejected: number
  /** Partial frames dropped (timeout, or too many in progress). */
  readonly partialsDropped: number
  /** Cells ignored as duplicates. */
  readonly cellsDuplicate: number
}

/** How much reassembly state is held right now. */
export interface ReassemblerSize {
  readonly addresses: number
  readonly partials: number
  /** Payload bytes held in partial frames. */
  readonly bufferedBytes: number
}

/** Reassembles frames from cells, per sender address, within fixed bounds. */
export interface Reassembler {
  /** Takes one cell; returns the frame it completes, if any. Never throws on any input. */
  readonly accept: (from: string, cell: Uint8Array, nowMs: number) => Uint8Array | undefined
  /** Drops partial frames older than the timeout and addresses with nothing left. */
  readonly sweep: (nowMs: number) => void
  /** Drops everything held for an address (its session closed). */
  readonly forget: (from: string) => void
  readonly stats: () => ReassemblerStats
  readonly size: () => ReassemblerSize
}

interface Partial {
  readonly count: number
  readonly startMs: number
  readonly parts: Array<Uint8Array | undefined>
  received: number
  bytes: number
}

interface AddressState {
  readonly partials: Map<number, Partial>
  /** Ids of the last frames completed, so late duplicates of their cells do not start new partials. */
  readonly recent: Array<number>
  recentNext: number
  lastMs: number
}

interface Header {
  readonly id: number
  readonly index: number
  readonly count: number
  readonly length: number
}

/** Largest cell count a frame may claim, or a defect if the options cannot be honoured. */
const countMaxOf = (options: ReassemblerOptions): number => {
  const room = payloadBytes(options.cellBytes)
  const countMax = Math.ceil(options.frameBytesMax / room)
  if (room <= 0 || room > 0xffff || countMax > 0xffff) {
    throw new Error(`fragment: cellBytes ${options.cellBytes} cannot carry frames of ${options.frameBytesMax} bytes`)
  }
  return Math.max(1, countMax)
}

const readHeader = (cell: Uint8Array): Header => ({
  id: ((cell[0]! << 24) | (cell[1]! << 16) | (cell[2]! << 8) | cell[3]!) >>> 0,
  index: (cell[4]! << 8) | cell[5]!,
  count: (cell[6]! << 8) | cell[7]!,
  length: (cell[8]! << 8) | cell[9]!
})

/** Whether a header is consistent on its own: in range, canonically cut, within the frame bound. */
const isConsistent = (header: Header, room: number, countMax: number, frameBytesMax: number): boolean => {
  const { count, index, length } = header
  if (count === 0 || count > countMax || index >= count || length > room) return false
  const last = index === count - 1
  if (!last) return length === room
  if (count > 1 && length === 0) return false
  return (count - 1) * room + length <= frameBytesMax
}

const assemble = (partial: Partial): Uint8Array => {
  const frame = new Uint8Array(partial.bytes)
  let offset = 0
  for (const part of partial.parts) {
    frame.set(part!, offset)
    offset += part!.length
  }
  return frame
}

/** A reassembler within the given bounds. */
export const makeReassembler = (options: ReassemblerOptions): Reassembler => {
  const room = payloadBytes(options.cellBytes)
  const countMax = countMaxOf(options)
  const partialsMax = Math.max(1, options.partialsPerAddressMax)
  const addressesMax = Math.max(1, options.addressesMax)
  const addresses = new Map<string, AddressState>()
  let cellsRejected = 0
  let partialsDropped = 0
  let cellsDuplicate = 0
  let bufferedBytes = 0

  const dropPartial = (state: AddressState, id: number, partial: Partial, counted: boolean): void => {
    state.partials.delete(id)
    bufferedBytes -= partial.bytes
    if (counted) partialsDropped++
  }

  const dropAddress = (from: string, state: AddressState, counted: boolean): void => {
    for (const [id, partial] of state.partials) dropPartial(state, id, partial, counted)
    addresses.delete(from)
  }

  /** The address's state, most recently active last, evicting the least recently active if full. */
  const touch = (from: string, nowMs: number): AddressState => {
    let state = addresses.get(from)
    if (state !== undefined) {
      addresses.delete(from)
    } else {
      if (addresses.size >= addressesMax) {
        const [oldest, oldestState] = addresses.entries().next().value!
        dropAddress(oldest, oldestState, true)
      }
      state = { partials: new Map(), recent: [], recentNext: 0, lastMs: nowMs }
    }
    state.lastMs = nowMs
    addresses.set(from, state)
    return state
  }

  const remember = (state: AddressState, id: number): void => {
    if (state.recent.length < partialsMax) state.recent.push(id)
    else state.recent[state.recentNext] = id
    state.recentNext = (state.recentNext + 1) % partialsMax
  }

  const partialFor = (state: AddressState, header: Header, nowMs: number): Partial | undefined => {
    const existing = state.partials.get(header.id)
    if (existing !== undefined && nowMs - existing.startMs < options.timeoutMs) {
      if (existing.count === header.count) return existing
      cellsRejected++
      return undefined
    }
    if (existing !== undefined) dropPartial(state, header.id, existing, true)
    if (state.partials.size >= partialsMax) {
      const [oldestId, oldest] = state.partials.entries().next().value!
      dropPartial(state, oldestId, oldest, true)
    }
    // count was checked against countMax before this allocation.
    const partial: Partial = { count: header.count, startMs: nowMs, parts: new Array(header.count), received: 0, bytes: 0 }
    state.partials.set(header.id, partial)
    return partial
  }

  const acceptMulti = (from: string, cell: Uint8Array, header: Header, nowMs: number): Uint8Array | undefined => {
    const state = touch(from, nowMs)
    if (state.recent.includes(header.id)) {
      cellsDuplicate++
      return undefined
    }
    const partial = partialFor(state, header, nowMs)
    if (partial === undefined) return undefined
    if (partial.parts[header.index] !== undefined) {
      cellsDuplicate++
      return undefined
    }
    partial.parts[header.index] = cell.slice(headerBytes, headerBytes + header.length)
    partial.received++
    partial.bytes += header.length
    bufferedBytes += header.length
    if (partial.received < partial.count) return undefined
    dropPartial(state, header.id, partial, false)
    remember(state, header.id)
    return assemble(partial)
  }

  const accept = (from: string, cell: Uint8Array, nowMs: number): Uint8Array | undefined => {
    if (cell.length !== options.cellBytes) {
      cellsRejected++
      return undefined
    }
    const header = readHeader(cell)
    if (!isConsistent(header, room, countMax, options.frameBytesMax)) {
      cellsRejected++
      return undefined
    }
    // A one-cell frame needs no state at all, so a flood of them from many addresses allocates nothing.
    if (header.count === 1) return cell.slice(headerBytes, headerBytes + header.length)
    return acceptMulti(from, cell, header, nowMs)
  }

  const sweep = (nowMs: number): void => {
    for (const [from, state] of addresses) {
      for (const [id, partial] of state.partials) {
        if (nowMs - partial.startMs >= options.timeoutMs) dropPartial(state, id, partial, true)
      }
      if (state.partials.size === 0 && nowMs - state.lastMs >= options.timeoutMs) addresses.delete(from)
    }
  }

  const forget = (from: string): void => {
    const state = addresses.get(from)
    if (state !== undefined) dropAddress(from, state, false)
  }

  const size = (): ReassemblerSize => {
    let partials = 0
    for (const state of addresses.values()) partials += state.partials.size
    return { addresses: addresses.size, partials, bufferedBytes }
  }

  return { accept, sweep, forget, stats: () => ({ cellsRejected, partialsDropped, cellsDuplicate }), size }
}
