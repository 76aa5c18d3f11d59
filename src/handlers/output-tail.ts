/**
 * The last bytes a program wrote, for an error reason: a chatty program cannot grow memory,
 * and the end of its output is where the reason for a failure usually is.
 */
import { oneLine, withoutSecrets } from "./printable.js";

export class OutputTail {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = false;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.maxBytes && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const excess = this.size - this.maxBytes;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
      this.dropped = true;
    }
  }

  /** The tail on one line ("a | b | c"), without `secrets`; "…" in front when earlier output was dropped. */
  text(secrets: readonly string[] = []): string {
    let text = Buffer.concat(this.chunks).toString("utf8");
    // A cut through a multi-byte character decodes as U+FFFD at the start: not the program's.
    if (this.dropped) text = text.replace(/^\ufffd+/, "");
    const lines = withoutSecrets(text, secrets)
      .split(/\r?\n/)
      .map((line) => oneLine(line, this.maxBytes))
      .filter((line) => line !== "");
    const joined = lines.join(" | ");
    return this.dropped && joined ? `…${joined}` : joined;
  }
}
