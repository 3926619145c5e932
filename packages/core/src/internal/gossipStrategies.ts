/**
 * The dissemination strategies by name, so a caller (the `Gossip` service, the simulator) picks one
 * with a string and gets an `Engine` behind the same interface.
 */
import type { Config, Engine, Options } from "./gossipEngine.js"
import * as Flood from "./gossipFlood.js"
import * as GossipSub from "./gossipSub.js"
import * as Weft from "./gossipWeft.js"

/** A strategy's name. */
export type Strategy = "weft" | "flood" | "gossipsub"

/** Every strategy, in report order. */
export const all: ReadonlyArray<Strategy> = ["weft", "flood", "gossipsub"]

/** An engine of `strategy` for one node. */
export const make = <P extends string | number, K, D>(strategy: Strategy, options: Options<P, K, D>, config: Config): Engine<P, K, D> => {
  switch (strategy) {
    case "weft":
      return Weft.make(options, config)
    case "flood":
      return Flood.make(options, config)
    case "gossipsub":
      return GossipSub.make(options, config)
  }
}
