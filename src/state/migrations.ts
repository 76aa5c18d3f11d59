// Moved to src/store/sqlite/migrations.ts; this re-export goes once every caller uses the store ports.
export * from "../store/sqlite/migrations.js";
