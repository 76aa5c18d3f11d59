/**
 * RawMessage (src/interfaces.ts) over a spool file, or over bytes in memory (tests, tools).
 * Over a file nothing is read until a handler asks: the directory handler copies the file
 * without ever holding it.
 */
import { readFile } from "node:fs/promises";
import type { RawMessage } from "../interfaces.js";

export function rawMessageFromFile(file: string, size: number): RawMessage {
  return {
    size,
    file,
    read: () => readFile(file),
  };
}

export function rawMessageFromBuffer(bytes: Buffer): RawMessage {
  return {
    size: bytes.length,
    read: () => Promise.resolve(bytes),
  };
}
