/** The IMAP encoding of source-neutral locations and cursors, and what the spool derives from them. */
import { describe, expect, it } from "vitest";
import { imapCursorBefore, imapCursorPosition, imapItem, imapLocation, parseImapCursor, parseImapItem } from "../../src/imap/imap-location.js";
import { sourceFields } from "../../src/source/source-fields.js";
import { cursorBefore, spoolKeyMaterial } from "../../src/source/source-kinds.js";
import { spoolKey } from "../../src/spool/stable-id.js";

describe("IMAP locations and cursors", () => {
  it("encode UIDVALIDITY and UID in the item and read them back", () => {
    expect(imapLocation({ folder: "INBOX", uidValidity: "1700000000", uid: 42 })).toEqual({ kind: "imap", folder: "INBOX", item: "1700000000:42" });
    expect(parseImapItem(imapItem("4294967295", 4294967295))).toEqual({ uidValidity: "4294967295", uid: 4294967295 });
    expect(parseImapCursor(imapCursorPosition({ uidValidity: "7", lastUid: 0 }))).toEqual({ uidValidity: "7", lastUid: 0 });
  });

  it("read nothing from text that is not theirs (a Graph id, a deltaLink, garbage)", () => {
    for (const text of [
      "",
      "7",
      "7:",
      ":3",
      "7:3:1",
      "a:1",
      "7:-1",
      "AAMkAGI2TG93AAA=",
      "https://graph.microsoft.com/v1.0/me/mailFolders/inbox/messages/delta?$deltatoken=x",
    ]) {
      expect(parseImapItem(text)).toBeUndefined();
      expect(parseImapCursor(text)).toBeUndefined();
    }
    expect(parseImapCursor(undefined)).toBeUndefined();
  });

  it("rewind a cursor to just below a message only when it is past it under the same UIDVALIDITY", () => {
    expect(imapCursorBefore("7:10", "7:4")).toBe("7:3");
    expect(imapCursorBefore("7:4", "7:4")).toBe("7:3");
    expect(imapCursorBefore("7:3", "7:4")).toBeUndefined();
    expect(imapCursorBefore("8:10", "7:4")).toBeUndefined();
    expect(imapCursorBefore(undefined, "7:4")).toBeUndefined();
    expect(cursorBefore({ kind: "imap", folder: "INBOX", item: "7:4" }, "7:9")).toBe("7:3");
    // A delta link cannot move back to one message: the folder is read from its start.
    expect(cursorBefore({ kind: "graph", folder: "inbox", item: "AAMk=" }, "https://graph.example/delta")).toBe("");
  });

  it("keep the spool key of an IMAP message what it was before locations were neutral", () => {
    const location = imapLocation({ folder: "INBOX", uidValidity: "7", uid: 3 });
    expect(spoolKeyMaterial(location)).toEqual(["INBOX", "7", "3"]);
    // The key release 5 of the schema gave (queue, folder, UIDVALIDITY, UID), written out here.
    expect(spoolKey("support", location)).toBe("s158327790afec864bf9d00685cc099b");
  });

  it("never give an IMAP message and another source's message one spool key", () => {
    const imap = spoolKey("support", { kind: "imap", folder: "INBOX", item: "7:3" });
    const graph = spoolKey("support", { kind: "graph", folder: "INBOX", item: "7:3" });
    expect(graph).not.toBe(imap);
    expect(graph).toMatch(/^s[0-9a-f]{31}$/);
  });

  it("show IMAP queues' UIDVALIDITY and UID beside the neutral fields, and only the neutral ones otherwise", () => {
    expect(sourceFields({ kind: "imap", folder: "INBOX", item: "7:3" })).toEqual({ kind: "imap", folder: "INBOX", item: "7:3", uidValidity: "7", uid: 3 });
    expect(sourceFields({ kind: "graph", folder: "inbox", item: "AAMk=" })).toEqual({ kind: "graph", folder: "inbox", item: "AAMk=" });
  });
});
