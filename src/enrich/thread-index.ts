/**
 * Outlook's Thread-Index header: base64 of a 22-byte conversation header (a reserved byte, a
 * FILETIME and a GUID) followed by one 5-byte block per reply or forward. The 22-byte header
 * stays the same for every message Outlook/Exchange threads into one conversation
 * ([MS-OXOMSG] PidTagConversationIndex), so it identifies the conversation.
 */

export interface ThreadIndex {
  /** The 22 bytes that identify the conversation. */
  readonly conversation: Buffer;
  /** How many reply/forward blocks follow: 0 for the message that started the conversation. */
  readonly childBlocks: number;
}

const HEADER_BYTES = 22;
const CHILD_BLOCK_BYTES = 5;
/** Far more than any conversation has (each block is one reply); a longer value is not a Thread-Index. */
const MAX_ENCODED_LENGTH = 4096;

/** The decoded Thread-Index, or undefined when the value is not one. */
export function decodeThreadIndex(value: string | undefined): ThreadIndex | undefined {
  if (value === undefined) return undefined;
  const encoded = value.replace(/\s+/g, "");
  if (encoded.length === 0 || encoded.length > MAX_ENCODED_LENGTH || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return undefined;
  const bytes = Buffer.from(encoded, "base64");
  if (bytes.length < HEADER_BYTES) return undefined;
  // Trailing bytes that do not make a whole block are ignored: some gateways re-encode and
  // pad; the conversation header is what matters.
  return {
    conversation: bytes.subarray(0, HEADER_BYTES),
    childBlocks: Math.floor((bytes.length - HEADER_BYTES) / CHILD_BLOCK_BYTES),
  };
}
