import { describe, expect, it } from "vitest"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Limits from "../src/Limits.js"

const doc = readFileSync(fileURLToPath(new URL("../../../docs/LIMITS.md", import.meta.url)), "utf8")

describe("Limits", () => {
  it("docs/LIMITS.md documents every limit", () => {
    const missing = Object.keys(Limits.defaults).filter((name) => !doc.includes(`\`${name}\``))
    expect(missing).toEqual([])
  })

  it("an envelope always fits in a frame", () => {
    expect(Limits.defaults.envelopeBytesMax).toBeLessThanOrEqual(Limits.defaults.frameBytesMax)
  })
})
