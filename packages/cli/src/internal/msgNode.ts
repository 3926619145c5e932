/**
 * The ephemeral-message service on a `weft node run` ledger node: `EphemeralNode` over the node's
 * gossip, its `ChainView` read from the ledger (`chainView.ts`), its RPCs (`Ephemeral`) served like the
 * ledger's, so `weft msg` reaches them through the control socket.
 */
import { EphemeralLimits, EphemeralNode } from "@weft/ephemeral"
import { Layer } from "effect"
import type * as NodeConfig from "../NodeConfig.js"
import * as ChainView from "./chainView.js"

/** The service as configured by the node config's `ephemeral` section. */
export const layer = (section: NodeConfig.Ephemeral) => {
  const blockDepth = section.blockDepth ?? EphemeralLimits.defaults.blockDepth
  return EphemeralNode.layer({ ...section, blockDepth }).pipe(
    Layer.provide(ChainView.layer(blockDepth)),
    Layer.provide(EphemeralLimits.layer())
  )
}
