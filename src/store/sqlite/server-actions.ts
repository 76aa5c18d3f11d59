/** ServerActionStore on SQLite: the outbox of actions owed on the server, in the order they were owed. */
import type { OwedAction, SourceKind } from "../../source/message-location.js";
import type { ServerActionStore } from "../ports.js";
import type { StateDatabase } from "./database.js";
import { inTransaction, settle } from "./guard.js";

export class SqliteServerActionStore implements ServerActionStore {
  constructor(private readonly db: StateDatabase) {}

  pending(queue: string, kind: SourceKind, folder: string): Promise<OwedAction[]> {
    return settle(() => {
      const rows = this.db
        .prepare("SELECT item_id, action, target FROM server_actions WHERE queue = ? AND source_kind = ? AND folder = ? ORDER BY rowid")
        .all(queue, kind, folder) as Array<{ item_id: string; action: OwedAction["action"]; target: string | null }>;
      return rows.map((r) => ({ item: r.item_id, action: r.action, target: r.target ?? undefined }));
    });
  }

  done(queue: string, kind: SourceKind, folder: string, items: readonly string[]): Promise<number> {
    const remove = this.db.prepare("DELETE FROM server_actions WHERE queue = ? AND source_kind = ? AND folder = ? AND item_id = ?");
    return inTransaction(this.db, () => items.reduce((removed, item) => removed + remove.run(queue, kind, folder, item).changes, 0));
  }
}
