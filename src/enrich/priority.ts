/**
 * The priority the sender set. Outlook writes X-Priority and Importance (and older versions
 * X-MSMail-Priority), Apple Mail and Thunderbird X-Priority, RFC 2156 gateways Priority.
 * The first of these headers that can be read decides, in that order; none: "normal".
 */
import type { MessagePriority } from "../interfaces.js";
import type { HeaderView } from "./headers.js";

const WORDS: Readonly<Record<string, MessagePriority>> = {
  highest: "high",
  high: "high",
  urgent: "high",
  normal: "normal",
  medium: "normal",
  low: "low",
  lowest: "low",
  "non-urgent": "low",
};

export function messagePriority(headers: HeaderView): MessagePriority {
  for (const name of ["x-priority", "importance", "x-msmail-priority", "priority"]) {
    const value = headers.first(name);
    if (value === undefined) continue;
    const priority = readPriority(value);
    if (priority !== undefined) return priority;
  }
  return "normal";
}

/** "1 (Highest)", "2", "High", "urgent", "non-urgent". */
function readPriority(value: string): MessagePriority | undefined {
  const text = value.trim().toLowerCase();
  const digit = /^([1-5])\b/.exec(text)?.[1];
  if (digit !== undefined) return digit <= "2" ? "high" : digit === "3" ? "normal" : "low";
  return WORDS[text.split(/[\s;(]/, 1)[0] ?? ""];
}
