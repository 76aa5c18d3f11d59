/**
 * How long a message's metadata may be in a webhook's x-mailfetchd-* headers and a command's
 * MAILFETCHD_* variables. A sender writes the Message-ID and the subject: a 20 KB Message-ID
 * in a header made a receiver answer 431 (Request Header Fields Too Large), and a 128 KiB one
 * would make the program's start fail (Linux's limit for one variable). Longer values are left
 * out there (named in x-mailfetchd-omitted / MAILFETCHD_OMITTED) and stay, whole, in the
 * message document, which is where anything but routing should be read from.
 */

/** Bytes of one value (as sent: percent-encoded for a header, UTF-8 for a variable). Real Message-IDs and subjects are well below. */
export const METADATA_VALUE_MAX_BYTES = 500;

/** Splits `values` into those short enough to send and the names of those left out. */
export function boundMetadata(values: Readonly<Record<string, string>>): { kept: Record<string, string>; omitted: string[] } {
  const kept: Record<string, string> = {};
  const omitted: string[] = [];
  for (const [name, value] of Object.entries(values)) {
    // Characters never outnumber UTF-8 bytes, so a long string is known to be too long uncounted.
    if (value.length > METADATA_VALUE_MAX_BYTES || Buffer.byteLength(value, "utf8") > METADATA_VALUE_MAX_BYTES) omitted.push(name);
    else kept[name] = value;
  }
  return { kept, omitted };
}
