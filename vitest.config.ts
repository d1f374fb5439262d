import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    pool: "forks",
    // Two workers on this 2-core class of machine: more only adds contention (model conversion, ffmpeg).
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
  },
});
