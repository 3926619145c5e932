import { defineProject } from "vitest/config"

export default defineProject({
  test: { name: "example-chat", include: ["test/**/*.test.ts"], testTimeout: 90_000 }
})
