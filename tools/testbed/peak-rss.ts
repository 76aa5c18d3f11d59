/**
 * This process's peak RSS since it started, from the kernel's high-water mark of its own memory
 * map (VmHWM). Not process.resourceUsage().maxRSS: Linux carries the parent's peak into a child
 * across fork and exec, so every probe the bench forked after its Graph scenario (which holds the
 * 896 MB corpus in memory) reported ~990 MB whatever it used itself.
 */
import { readFileSync } from "node:fs";

export function peakRssBytes(): number {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // not Linux: the portable figure, with its caveat
  }
  return process.resourceUsage().maxRSS * 1024;
}
