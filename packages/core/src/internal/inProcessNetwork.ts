/**
 * What the in-process transports (memory and simulated) share: address allocation, the bound slot of
 * an endpoint with its bounded inbox and counters, and the delivery of one cell into a slot.
 */
import { Effect, Mailbox } from "effect"
import type { Values as Limits } from "../Limits.js"
import { type Address, type Datagram, kindOf, type Stats } from "../Transport.js"
import { TransportError } from "../WeftError.js"

/** Where a network keeps its bound addresses and the next number to hand out. */
export interface Book {
  readonly slots: ReadonlyMap<Address, unknown>
  nextNumber: number
}

/** The requested address if it is free and of this kind, else the next free `<kind>:<n>`. */
export const allocate = (kind: string, book: Book, requested: Address | undefined): Effect.Effect<Address, TransportError> => {
  if (requested === undefined) {
    let address: Address
    do address = `${kind}:${book.nextNumber++}`
    while (book.slots.has(address))
    return Effect.succeed(address)
  }
  if (kindOf(requested) !== kind) {
    return Effect.fail(new TransportError({ reason: "BadAddress", detail: `not a ${kind} address: ${requested}` }))
  }
  if (book.slots.has(requested)) {
    return Effect.fail(new TransportError({ reason: "Bind", detail: `address in use: ${requested}` }))
  }
  return Effect.succeed(requested)
}

/** One bound endpoint: its cell size, its bounded dropping inbox and what it counts. */
export interface Slot {
  readonly cellBytes: number
  readonly inbox: Mailbox.Mailbox<Datagram>
  cellsReceived: number
  cellsDroppedInboxFull: number
  cellsDroppedWrongSize: number
}

/** A fresh slot sized by the endpoint's limits. */
export const makeSlot = (limits: Limits): Effect.Effect<Slot> =>
  Effect.map(
    Mailbox.make<Datagram>({ capacity: limits.endpointInboxCells, strategy: "dropping" }),
    (inbox) => ({ cellBytes: limits.cellBytes, inbox, cellsReceived: 0, cellsDroppedInboxFull: 0, cellsDroppedWrongSize: 0 })
  )

/** Offers one cell to a slot, counting the outcome on the slot; plain code for the per-cell path. */
export const offer = (slot: Slot, datagram: Datagram): "delivered" | "wrongSize" | "inboxFull" => {
  if (datagram.cell.length !== slot.cellBytes) {
    slot.cellsDroppedWrongSize++
    return "wrongSize"
  }
  if (slot.inbox.unsafeOffer(datagram)) {
    slot.cellsReceived++
    return "delivered"
  }
  slot.cellsDroppedInboxFull++
  return "inboxFull"
}

/** The endpoint stats of a slot. */
export const statsOf = (slot: Slot, sent: () => number): Effect.Effect<Stats> =>
  Effect.sync(() => ({
    cellsSent: sent(),
    cellsReceived: slot.cellsReceived,
    cellsDroppedInboxFull: slot.cellsDroppedInboxFull,
    cellsDroppedWrongSize: slot.cellsDroppedWrongSize
  }))
