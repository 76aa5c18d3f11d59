/**
 * The bearer token check. Both sides are hashed to a fixed length first, so the comparison
 * takes the same time whatever was presented, including its length.
 */
import { createHash, timingSafeEqual } from "node:crypto";

const BEARER = /^Bearer[ \t]+([\x21-\x7e]+)[ \t]*$/i;

export function bearerTokenMatches(authorization: string | undefined, expected: string): boolean {
  const presented = BEARER.exec(authorization ?? "")?.[1] ?? "";
  const equal = timingSafeEqual(digest(presented), digest(expected));
  return equal && presented.length > 0;
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
