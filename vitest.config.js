// Unit tests of the web client's modules (tests/web/). Coverage is measured over the modules that hold
// the client's logic (API client, errors, state, live stream, forms' fields, routes, chart, DOM helpers);
// the views and main.js draw pages from them and are exercised by the browser test (tests/e2e/test_web_app.py).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/web/**/*.test.js"],
    environment: "node",
    coverage: {
      provider: "v8",
      include: ["tripsage/static/js/*.js"],
      exclude: ["tripsage/static/js/main.js"],
      reportsDirectory: "coverage-js",
      reporter: ["text", "text-summary"],
      thresholds: { lines: 95, functions: 95, branches: 95, statements: 95 },
    },
  },
});
