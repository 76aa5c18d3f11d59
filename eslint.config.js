// eslint: the recommended rules (no stylistic ones: prettier owns layout) and the import
// boundaries that keep the layering of ARCHITECTURE.md, as `no-restricted-imports` patterns
// on the relative specifier. `(\.\./)+name/` reaches the folder src/name/ from any folder of
// src/ (they are one level deep), so each boundary is one pattern.
import { readdirSync } from "node:fs";
import js from "@eslint/js";
import tseslint from "typescript-eslint";

/** Mail-source and state-store adapters: wired by the composition root and the CLI only. */
const ADAPTERS = ["imap", "graph", "store/sqlite", "store/postgres"];
/** The shared files every part may import (with src/support/). */
const SHARED = ["interfaces", "errors", "events", "log"];

const up = String.raw`^(\.\./)+`;
const boundary = (regex, message) => ({ regex, message });

const NOT_TOOLS = boundary(String.raw`^(\./|(\.\./)+)(tools|test)/`, "src/ never imports tools/ or test/: only what the daemon runs ships.");
const NOT_WIRING = boundary(
  String.raw`^(\./|(\.\./)+)(app\.js$|cli\.js$|cli/)`,
  "Only the composition root (src/app.ts) and the CLI wire subsystems; depend on a port instead.",
);
/**
 * `except`: a specifier (relative to the importing file) allowed despite the boundary.
 * `(store/)?`: one store adapter reaches another as ../sqlite/, the rest of src/ as ../store/sqlite/.
 */
const notAdapters = (own, except = []) =>
  boundary(
    `^${except.map((path) => `(?!${path.replaceAll(".", "\\.")}$)`).join("")}(\\./|(\\.\\./)+)(${ADAPTERS.filter((name) => name !== own)
      .map((name) => name.replace("store/", "(store/)?"))
      .join("|")})/`,
    "Adapters (src/imap/, src/graph/, src/store/sqlite/, src/store/postgres/) are imported only by src/app.ts, src/cli/ and src/check/; use the port (src/source/mail-source.ts, src/store/ports.ts).",
  );

function restrict(files, patterns) {
  return { files, rules: { "no-restricted-imports": ["error", { patterns }] } };
}

/** One block per folder of src/: a later block replaces an earlier one's patterns, so each lists all of its own. */
function pipelineBlocks() {
  const folders = readdirSync("src", { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .filter((name) => !["support", "source", "cli", "check", "store"].includes(name));
  return [
    restrict(["src/*.ts"], [NOT_TOOLS, NOT_WIRING, notAdapters("")]),
    ...folders.map((name) => restrict([`src/${name}/**/*.ts`], [NOT_TOOLS, NOT_WIRING, notAdapters(name)])),
    restrict(["src/store/**/*.ts"], [NOT_TOOLS, NOT_WIRING, notAdapters("store")]),
    ...ADAPTERS.filter((name) => name.startsWith("store/")).map((name) => restrict([`src/${name}/**/*.ts`], [NOT_TOOLS, NOT_WIRING, notAdapters(name)])),
  ];
}

export default tseslint.config(
  { ignores: ["dist/", "dist-tools/", "coverage/", "test-artifacts/", ".demo/", ".scratch-bench/", "test/fixtures/", "node_modules/"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // The build and release scripts (scripts/*.mjs) and this file run on Node.js.
    files: ["**/*.{js,mjs}"],
    languageOptions: {
      globals: { process: "readonly", console: "readonly", URL: "readonly", Buffer: "readonly", setTimeout: "readonly", clearTimeout: "readonly" },
    },
  },
  {
    rules: {
      // `_name` marks a parameter an interface requires and this implementation does not use.
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      // `let x; ... () => x?.y(); x = new X()`: a callback given before the object it calls exists.
      "prefer-const": ["error", { ignoreReadBeforeAssign: true }],
      // The sanitizers, the name checks and the terminal output match control characters on purpose.
      "no-control-regex": "off",
      // `catch {}` where a best-effort step may fail (e.g. no git checkout): nothing to report.
      "no-empty": ["error", { allowEmptyCatch: true }],
    },
  },
  // The class lists invisible combining marks and variation selectors one by one, on purpose.
  { files: ["src/support/safe-filename.ts"], rules: { "no-misleading-character-class": "off" } },
  // Tests read JSON loosely and match terminal output's aligned columns verbatim.
  { files: ["test/**/*.ts"], rules: { "@typescript-eslint/no-explicit-any": "off", "no-regex-spaces": "off" } },

  // --- import boundaries (ARCHITECTURE.md, "Layers") ---------------------------------------
  ...pipelineBlocks(),
  // The composition root and the CLI wire everything. Exception: src/check/, the steps of
  // `mailfetchd check`, probes each source with its own adapter (ARCHITECTURE.md: a new source
  // adds its steps there); moving them beside their adapters would split the check command.
  restrict(["src/app.ts", "src/cli.ts", "src/cli/**/*.ts", "src/check/**/*.ts"], [NOT_TOOLS]),
  // The store's own factory: the one place a state-store adapter is chosen from the config
  // (the composition root and the CLI call it, so they never name an adapter themselves).
  restrict(["src/store/open-store.ts"], [NOT_TOOLS, NOT_WIRING]),
  // Small helpers with no domain: nothing of the pipeline, so every part may use them.
  restrict(
    ["src/support/**/*.ts"],
    [NOT_TOOLS, boundary(String.raw`^\.\./`, "src/support/ imports nothing of the pipeline (only node:, packages and other support files).")],
  ),
  // The shared files import nothing of the pipeline: only each other and src/support/.
  restrict(
    SHARED.map((name) => `src/${name}.ts`),
    [
      NOT_TOOLS,
      boundary(String.raw`^\./(?!(${SHARED.join("|")})\.js$|support/)`, "The shared files (interfaces, errors, events, log) import nothing of the pipeline."),
    ],
  ),
  // Exception: the public message types name the source-neutral location and the source
  // fields handlers see, whose types live in src/source/. Moving them into interfaces.ts
  // is a bigger move (every source file imports them from there); type-only, no cycle at run time.
  restrict(
    ["src/interfaces.ts"],
    [
      NOT_TOOLS,
      boundary(
        String.raw`^\./(?!(${SHARED.join("|")})\.js$|support/|source/message-location\.js$|source/source-fields\.js$)`,
        "The shared files (interfaces, errors, events, log) import nothing of the pipeline.",
      ),
    ],
  ),
  // The mail-source port knows no adapter and no queue; a source is chosen in src/app.ts.
  restrict(
    ["src/source/**/*.ts"],
    [NOT_TOOLS, NOT_WIRING, notAdapters("source"), boundary(`${up}queue/`, "src/source/ (the mail-source port) does not import src/queue/.")],
  ),
  // Exception: the per-kind tables (spool key material, IMAP's public fields) decode IMAP's
  // item and cursor with imap-location.ts's pure functions. Removing it needs each adapter to
  // register its kind (a bigger move, due when the Graph source lands in the same files).
  restrict(
    ["src/source/source-kinds.ts", "src/source/source-fields.ts"],
    [
      NOT_TOOLS,
      NOT_WIRING,
      notAdapters("source", ["../imap/imap-location.js"]),
      boundary(`${up}queue/`, "src/source/ (the mail-source port) does not import src/queue/."),
    ],
  ),
  // The tools (test bed, bench, demo) may use src/; the tests use both; neither is imported back.
  restrict(["tools/**/*.ts"], [boundary(`${up}test/`, "tools/ does not import test/: a helper two test folders share belongs in tools/testbed/helpers/.")]),
);
