/** The shared delivery budget alone (pure logic): bounds across queues, turns, big messages, aborts. */
import { describe, expect, it } from "vitest";
import { MemoryBudget, type Release } from "../../src/queue/memory-budget.js";

const MB = 1024 * 1024;
const never = new AbortController().signal;
/** Lets granted promises settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** Starts an acquire and records when it is granted, in order. */
function asker(budget: MemoryBudget, granted: string[]) {
  return (queue: string, bytes = 1, signal = never): Promise<Release> =>
    budget.acquire(queue, bytes, signal).then((release) => {
      granted.push(queue);
      return release;
    });
}

describe("MemoryBudget", () => {
  it("bounds messages and bytes across all queues together", async () => {
    const budget = new MemoryBudget({ messages: 3, bytes: 10 * MB });
    const granted: string[] = [];
    const ask = asker(budget, granted);
    const releases = await Promise.all([ask("a", MB), ask("b", MB), ask("c", MB)]);
    void ask("d", MB);
    await settle();
    expect(granted).toEqual(["a", "b", "c"]);
    expect(budget.inUse).toEqual({ messages: 3, bytes: 3 * MB });
    releases[0]!();
    await settle();
    expect(granted).toEqual(["a", "b", "c", "d"]);

    const bytes = new MemoryBudget({ messages: 10, bytes: 10 * MB });
    const byBytes: string[] = [];
    const askBytes = asker(bytes, byBytes);
    const six = await askBytes("a", 6 * MB);
    void askBytes("b", 6 * MB);
    await settle();
    expect(byBytes).toEqual(["a"]);
    six();
    six(); // twice is harmless
    await settle();
    expect(byBytes).toEqual(["a", "b"]);
    expect(bytes.inUse).toEqual({ messages: 1, bytes: 6 * MB });
  });

  it("serves waiting queues in turn, so a queue with a backlog cannot starve one with a single message", async () => {
    const budget = new MemoryBudget({ messages: 2, bytes: 100 * MB });
    const granted: string[] = [];
    const held: Release[] = [];
    const ask = (queue: string) => void budget.acquire(queue, 1, never).then((release) => (granted.push(queue), held.push(release)));
    for (const queue of ["busy", "busy", "busy", "busy", "busy", "quiet", "other"]) ask(queue);
    await settle();
    expect(granted).toEqual(["busy", "busy"]);
    for (let i = 0; i < 5; i++) {
      held.shift()!();
      await settle();
    }
    // busy keeps its turn (it asked first), then quiet and other, then busy's rest.
    expect(granted).toEqual(["busy", "busy", "busy", "quiet", "other", "busy", "busy"]);
  });

  it("lets a message bigger than the byte budget go alone, and never lets smaller ones overtake it for ever", async () => {
    const budget = new MemoryBudget({ messages: 8, bytes: 10 * MB });
    const granted: string[] = [];
    const ask = asker(budget, granted);
    const small = await ask("a", MB);
    void ask("big", 50 * MB);
    void ask("a", MB);
    await settle();
    expect(granted).toEqual(["a"]); // the big one holds the turn: the small one waits behind it
    small();
    await settle();
    expect(granted).toEqual(["a", "big"]);
    expect(budget.inUse).toEqual({ messages: 1, bytes: 50 * MB });
  });

  it("gives up a wait when aborted, holding nothing, and passes the turn on", async () => {
    const budget = new MemoryBudget({ messages: 1, bytes: 10 * MB });
    const granted: string[] = [];
    const ask = asker(budget, granted);
    const first = await ask("a", MB);
    const stop = new AbortController();
    const aborted = ask("b", 20 * MB, stop.signal);
    void ask("c", MB);
    stop.abort(new Error("stopping"));
    await expect(aborted).rejects.toThrow("stopping");
    first();
    await settle();
    expect(granted).toEqual(["a", "c"]);
    expect(budget.inUse).toEqual({ messages: 1, bytes: MB });
    await expect(budget.acquire("d", 1, stop.signal)).rejects.toThrow("stopping");
  });
});
