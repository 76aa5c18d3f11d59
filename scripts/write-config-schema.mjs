#!/usr/bin/env node
// Writes config/mailfetchd.schema.json from the built zod schema (run `npm run build` first).
import { writeFileSync } from "node:fs";
import { configJsonSchema } from "../dist/config/json-schema.js";

writeFileSync("config/mailfetchd.schema.json", `${JSON.stringify(configJsonSchema(), null, 2)}\n`);
console.log("wrote config/mailfetchd.schema.json");
