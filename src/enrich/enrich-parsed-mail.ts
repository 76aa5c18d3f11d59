/**
 * The one call the parser makes: enrich what it mapped from mailparser's output. Never
 * rejects: whatever goes wrong, the message comes back with what it had, and
 * enrichmentErrors says what is missing.
 */
import type { ParsedMail } from "mailparser";

import type { ParsedMessage } from "../interfaces.js";
import { enrichMessage, type Enricher } from "./enrich.js";
import { sourceFromMailparser } from "./enrichment-source.js";

export interface ParsedMailEnrichment {
  readonly maxHtmlLength: number;
  /** Replaces the standard enrichers (tests). */
  readonly enrichers?: readonly Enricher[];
  /**
   * Whether the raw message has a text/plain body (plain-text-body.ts), asked only when the
   * message has both html and text; absent: unknown (a headers-only parse).
   */
  readonly plainTextBody?: () => boolean | undefined | Promise<boolean | undefined>;
}

export async function enrichParsedMail(mail: ParsedMail, base: ParsedMessage, options: ParsedMailEnrichment): Promise<ParsedMessage> {
  try {
    const ambiguousText = base.html !== undefined && base.text !== undefined;
    const hasPlainTextBody = ambiguousText && options.plainTextBody !== undefined ? await options.plainTextBody() : undefined;
    return enrichMessage(base, sourceFromMailparser(mail, hasPlainTextBody), {
      maxHtmlLength: options.maxHtmlLength,
      ...(options.enrichers === undefined ? {} : { enrichers: options.enrichers }),
    });
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).replace(/\s+/g, " ").slice(0, 300);
    return { ...base, enrichmentErrors: [{ enricher: "all", error: `enrichment failed: ${reason}` }] };
  }
}
