/**
 * Proof-of-authority slot arithmetic, shared by `Block` (edge checks) and `Consensus` (the rules).
 * Pure functions of the genesis: every node computes the same slot and producer from a block's time.
 */
import type { Authority, Genesis } from "../Block.js"

/** The slot a time falls in: floor((timeMs − genesis time) / block time); negative before genesis. */
export const slotAt = (genesis: Genesis, timeMs: number): number =>
  Math.floor((timeMs - genesis.timeMs) / genesis.params.blockTimeMs)

/** When a slot begins. */
export const slotStartMs = (genesis: Genesis, slot: number): number => genesis.timeMs + slot * genesis.params.blockTimeMs

/** The authority that produces slot `slot`: round-robin over the genesis authority set. */
export const producerOf = (genesis: Genesis, slot: number): Authority => {
  const count = genesis.authorities.length
  return genesis.authorities[((slot % count) + count) % count]!
}

/** The epoch of a slot: one epoch is one round of the authority set, so each authority has one slot per epoch. */
export const epochOf = (genesis: Genesis, slot: number): number => Math.floor(slot / genesis.authorities.length)

/** Distinct authorities needed for a supermajority: more than two thirds. */
export const quorum = (authorities: number): number => Math.floor((2 * authorities) / 3) + 1
