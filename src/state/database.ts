// Moved to src/store/sqlite/database.ts; this re-export goes once every caller uses the store ports.
export * from "../store/sqlite/database.js";
