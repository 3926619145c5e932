import { defineProject } from "vitest/config"

export default defineProject({
  test: { name: "example-custom-node", include: ["test/**/*.test.ts"], testTimeout: 60_000 }
})
