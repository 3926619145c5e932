/**
 * The CLI's way of showing value: `50.0 WEFT (Account 0x…)`, `25.0 WEFT (Coin 0x…)`,
 * `… (Pending Transaction 0x…)`, and `… (Coin [private])` for a coin whose id the viewer cannot know
 * (the sender's view of a mutual transfer).
 */
import * as Amount from "./Amount.js"
import * as Id from "./Id.js"
import type * as Params from "./Params.js"

type Units = Pick<Params.Params, "unitsPerToken" | "symbol">

const value = (amount: Amount.Amount, params: Units) => Amount.format(amount, params.unitsPerToken, params.symbol)

/** `50.0 WEFT (Account 0x…)`. */
export const account = (amount: Amount.Amount, id: Id.Id, params: Units): string => `${value(amount, params)} (Account ${Id.display(id)})`

/** `25.0 WEFT (Coin 0x…)`. */
export const coin = (amount: Amount.Amount, id: Id.Id, params: Units): string => `${value(amount, params)} (Coin ${Id.display(id)})`

/** `25.0 WEFT (Pending Transaction 0x…)`. */
export const pending = (amount: Amount.Amount, id: Id.Id, params: Units): string => `${value(amount, params)} (Pending Transaction ${Id.display(id)})`

/** `25.0 WEFT (Coin [private])`. */
export const privateCoin = (amount: Amount.Amount, params: Units): string => `${value(amount, params)} (Coin [private])`
