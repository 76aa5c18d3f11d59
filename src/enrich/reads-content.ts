/**
 * The attachments whose bytes the enrichers read (a calendar's METHOD, a delivery status
 * report, a winmail.dat to unpack): the parser keeps these in memory however big they are,
 * and may put any other big attachment in a scratch file (src/parse/collect-mail.ts).
 */
import { DELIVERY_STATUS_TYPES } from "./bounce.js";
import { CALENDAR_TYPES } from "./calendar.js";
import { mayBeTnef } from "./tnef-attachments.js";

export function enrichersReadContentOf(contentType: string, filename: string | undefined): boolean {
  return CALENDAR_TYPES.has(contentType) || DELIVERY_STATUS_TYPES.has(contentType) || mayBeTnef(contentType, filename);
}
