/** DeadLetterStore on SQLite: deliveries parked for an operator, listed, put back in line or dropped. */
import type { MessageLocation, SourceKind } from "../../source/message-location.js";
import type { DeadLetterRecord, DeadLetterStore } from "../ports.js";
import { deadLetterOf, type DeadLetterRow } from "../rows.js";
import type { StateDatabase } from "./database.js";
import { inTransaction, settle } from "./guard.js";
import { readCursor, setCursor } from "./messages.js";

interface MessageRow {
  seq: number;
  source_kind: SourceKind;
  folder: string;
  item_id: string;
  headers_only: number;
}

export class SqliteDeadLetterStore implements DeadLetterStore {
  constructor(private readonly db: StateDatabase) {}

  list(queue?: string): Promise<DeadLetterRecord[]> {
    return settle(() => {
      const rows = this.db
        .prepare(
          `SELECT m.queue, COALESCE(m.stable_id, m.id) AS id, m.id AS spool_key, d.handler, d.attempts, d.last_error, m.source_kind, m.folder, m.item_id, m.size,
             m.spooled_at, m.header_message_id, m.headers_only
           FROM deliveries d JOIN messages m ON m.seq = d.message_seq
           WHERE d.state = 'dead' AND (? IS NULL OR m.queue = ?) ORDER BY m.seq, d.handler`,
        )
        .all(queue ?? null, queue ?? null) as DeadLetterRow[];
      return rows.map(deadLetterOf);
    });
  }

  count(queue: string): Promise<number> {
    return settle(() => {
      const row = this.db
        .prepare(`SELECT COUNT(*) AS n FROM deliveries d JOIN messages m ON m.seq = d.message_seq WHERE m.queue = ? AND d.state = 'dead'`)
        .get(queue) as { n: number };
      return row.n;
    });
  }

  retry(
    queue: string,
    id: string,
    handler: string | undefined,
    rewind: (location: MessageLocation, cursor: string | undefined) => string | undefined,
  ): Promise<number> {
    return inTransaction(this.db, () => {
      let changed = 0;
      for (const message of this.messagesWithId(queue, id)) {
        if (message.headers_only) {
          const location: MessageLocation = { kind: message.source_kind, folder: message.folder, item: message.item_id };
          const rewound = rewind(location, readCursor(this.db, queue, location.kind, location.folder));
          if (rewound !== undefined) setCursor(this.db, queue, location.kind, location.folder, rewound);
          this.db.prepare("UPDATE messages SET awaiting_refetch = 1 WHERE seq = ?").run(message.seq);
          changed += this.db.prepare("DELETE FROM deliveries WHERE message_seq = ?").run(message.seq).changes;
          continue;
        }
        changed += this.db
          .prepare(
            `UPDATE deliveries SET state = 'pending', next_attempt_at = 0, attempts = 0
             WHERE message_seq = ? AND state = 'dead' AND (? IS NULL OR handler = ?)`,
          )
          .run(message.seq, handler ?? null, handler ?? null).changes;
      }
      return changed;
    });
  }

  drop(queue: string, id: string, handler?: string): Promise<number> {
    const drop = this.db.prepare(
      `UPDATE deliveries SET state = 'dropped', delivered_at = ?, last_error = 'dropped by operator: ' || COALESCE(last_error, '')
       WHERE state = 'dead' AND (? IS NULL OR handler = ?) AND message_seq = ?`,
    );
    return inTransaction(this.db, () =>
      this.messagesWithId(queue, id).reduce((n, m) => n + drop.run(Date.now(), handler ?? null, handler ?? null, m.seq).changes, 0),
    );
  }

  /** The rows a dead letter id names: its stable id (a repeat shares it), or its spool key. */
  private messagesWithId(queue: string, id: string): MessageRow[] {
    return this.db
      .prepare("SELECT seq, source_kind, folder, item_id, headers_only FROM messages WHERE queue = ? AND (stable_id = ? OR id = ?) ORDER BY seq")
      .all(queue, id, id) as MessageRow[];
  }
}
