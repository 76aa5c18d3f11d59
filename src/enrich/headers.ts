/**
 * Read access to a message's top-level header fields as the sender wrote them.
 *
 * The enrichers look at headers mailparser does not model (Auto-Submitted, Thread-Index,
 * X-Auto-Response-Suppress, Return-Path "<>"), and need the raw value: mailparser turns
 * "Return-Path: <>" into an empty address list, indistinguishable from a missing header.
 */

export interface HeaderField {
  /** Lower-cased. */
  readonly name: string;
  /** Unfolded and trimmed; encoded words are not decoded. */
  readonly value: string;
}

/** No real header is this long; a longer one is cut so that no regular expression sees megabytes. */
const MAX_VALUE_LENGTH = 16 * 1024;

export class HeaderView {
  private readonly byName = new Map<string, string[]>();

  constructor(fields: readonly HeaderField[]) {
    for (const field of fields) {
      const values = this.byName.get(field.name);
      if (values === undefined) this.byName.set(field.name, [field.value]);
      else values.push(field.value);
    }
  }

  /** From mailparser's `headerLines` ({ key, line }: the raw field, name included). */
  static fromLines(lines: readonly { readonly key: string; readonly line: string }[] | undefined): HeaderView {
    return new HeaderView((lines ?? []).map(({ key, line }) => ({ name: key.toLowerCase(), value: fieldValue(line) })));
  }

  /** From a raw header block ("Name: value" lines, folded or not); what tests write. */
  static fromBlock(block: string): HeaderView {
    const fields: HeaderField[] = [];
    for (const line of block.replace(/\r?\n(?=[ \t])/g, "").split(/\r?\n/)) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      fields.push({ name: line.slice(0, colon).trim().toLowerCase(), value: fieldValue(line) });
    }
    return new HeaderView(fields);
  }

  /** The first field of that name (the one nearest the top: the newest for trace fields). */
  first(name: string): string | undefined {
    return this.byName.get(name.toLowerCase())?.[0];
  }

  all(name: string): readonly string[] {
    return this.byName.get(name.toLowerCase()) ?? [];
  }

  has(name: string): boolean {
    return this.byName.has(name.toLowerCase());
  }
}

function fieldValue(line: string): string {
  const value = line
    .slice(line.indexOf(":") + 1)
    .replace(/\r?\n(?=[ \t])/g, "")
    .replace(/\r?\n$/, "")
    .trim();
  return value.length > MAX_VALUE_LENGTH ? value.slice(0, MAX_VALUE_LENGTH) : value;
}
