/** Address allocation shared by the in-process transports (memory and simulated). */
import { Effect } from "effect"
import { type Address, kindOf } from "../Transport.js"
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
