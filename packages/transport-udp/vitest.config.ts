import { defineProject } from "vitest/config"

export default defineProject({
  test: { name: "transport-udp", include: ["test/**/*.test.ts"], testTimeout: 30_000 }
})
