import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // The end-to-end tests start real Dovecot and identity processes; give them room,
    // but never as a speed assertion (speed is measured by `npm run bench`).
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Each file starts its own test bed on free ports; two cores, so two at a time.
    maxWorkers: 2,
  },
});
