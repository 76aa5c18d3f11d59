/**
 * A message's source as handlers and operators see it (message document `source`, webhook
 * headers, command environment, dead letters): the neutral kind, folder and item for every
 * source, plus IMAP's own UIDVALIDITY and UID for IMAP queues, as before the source port.
 */
import { parseImapItem } from "../imap/imap-location.js";
import type { MessageLocation, SourceKind } from "./message-location.js";

export interface SourceFields {
  readonly kind: SourceKind;
  readonly folder: string;
  /** The source's own id of the message (IMAP: "<uidValidity>:<uid>"); opaque to consumers. */
  readonly item: string;
  /** IMAP queues only. */
  readonly uidValidity?: string;
  /** IMAP queues only. */
  readonly uid?: number;
}

export function sourceFields(location: MessageLocation): SourceFields {
  const imap = location.kind === "imap" ? parseImapItem(location.item) : undefined;
  return { kind: location.kind, folder: location.folder, item: location.item, ...(imap ?? {}) };
}
