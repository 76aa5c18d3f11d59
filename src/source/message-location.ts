/**
 * Where a message sits at its source, in terms every part of the daemon past the source can
 * use without knowing the source: its kind, its folder, and an item id that only the source's
 * adapter reads. IMAP encodes UIDVALIDITY and UID in the item (src/imap/imap-location.ts); the
 * Graph source puts the message's immutable id there (src/graph/graph-source.ts).
 */

/** The mail sources there are; a queue's `source` names one (src/imap/, src/graph/). */
export type SourceKind = "imap" | "graph";

export interface MessageLocation {
  readonly kind: SourceKind;
  readonly folder: string;
  /** Opaque outside the source's adapter; unique within its folder for as long as the folder's cursor is valid. */
  readonly item: string;
}

/** A change on the server owed for a message that is durably spooled, addressed by its item id. */
export interface OwedAction {
  readonly item: string;
  readonly action: "seen" | "move" | "delete";
  /** The destination folder of a move. */
  readonly target?: string;
}
