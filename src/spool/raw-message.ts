/**
 * RawMessage (src/interfaces.ts) over a spool file, or over bytes in memory (tests, tools).
 * Over a file nothing is read until a handler asks: the directory handler copies the file
 * without ever holding it.
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { Readable } from "node:stream";
import type { RawMessage } from "../interfaces.js";

export function rawMessageFromFile(file: string, size: number): RawMessage {
  return {
    size,
    file,
    read: () => readFile(file),
    stream: () => createReadStream(file),
  };
}

export function rawMessageFromBuffer(bytes: Buffer): RawMessage {
  return {
    size: bytes.length,
    read: () => Promise.resolve(bytes),
    stream: () => Readable.from([bytes]),
  };
}
