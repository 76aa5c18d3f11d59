/**
 * The MAPI property list inside a TNEF attribute ([MS-OXTNEF] 2.1.3.4 MsgPropertyList):
 * a count, then per property a type, an id (with a GUID and name or number for named
 * properties), and the value(s), each padded to 4 bytes. Only what the attachment unpacker
 * needs is kept: the values of unnamed properties, by id.
 *
 * Every length is checked against the bytes that are left, and counts are capped, so a
 * broken or hostile list ends the reading early instead of reading out of bounds or looping.
 */

export interface MapiProperty {
  readonly id: number;
  readonly type: number;
  /** The raw value(s): for strings and binaries the bytes without length and padding. */
  readonly values: Buffer[];
}

export const PT_SHORT = 0x0002;
export const PT_LONG = 0x0003;
export const PT_BOOLEAN = 0x000b;
export const PT_OBJECT = 0x000d;
export const PT_STRING8 = 0x001e;
export const PT_UNICODE = 0x001f;
export const PT_BINARY = 0x0102;
const MULTI_VALUED = 0x1000;

const FIXED_SIZES: Readonly<Record<number, number>> = {
  0x0001: 4, // PT_NULL
  [PT_SHORT]: 4, // 2 bytes, padded
  [PT_LONG]: 4,
  0x0004: 4, // PT_FLOAT
  0x000a: 4, // PT_ERROR
  [PT_BOOLEAN]: 4, // 2 bytes, padded
  0x0005: 8, // PT_DOUBLE
  0x0006: 8, // PT_CURRENCY
  0x0007: 8, // PT_APPTIME
  0x0014: 8, // PT_I8
  0x0040: 8, // PT_SYSTIME
  0x0048: 16, // PT_CLSID
};
const VARIABLE_TYPES = new Set([PT_OBJECT, PT_STRING8, PT_UNICODE, PT_BINARY]);

const MAX_PROPERTIES = 4096;
const MAX_VALUES = 4096;

class MapiReadError extends Error {}

export interface MapiPropertyList {
  readonly properties: MapiProperty[];
  /** Why reading stopped before the end; the properties before that point are kept. */
  readonly error?: string;
}

/** Reads a property list up to the first thing that does not fit. Never throws. */
export function readMapiProperties(data: Buffer): MapiPropertyList {
  const properties: MapiProperty[] = [];
  try {
    readInto(properties, new BoundedReader(data));
    return { properties };
  } catch (error) {
    if (!(error instanceof MapiReadError)) throw error;
    return { properties, error: error.message };
  }
}

function readInto(properties: MapiProperty[], reader: BoundedReader): void {
  const count = reader.u32();
  if (count > MAX_PROPERTIES) throw new MapiReadError(`MAPI property count ${count} is not plausible`);
  for (let index = 0; index < count; index++) {
    const type = reader.u16();
    const id = reader.u16();
    if (id >= 0x8000) {
      reader.skip(16); // property set GUID
      const kind = reader.u32();
      if (kind === 0) reader.skip(4);
      else reader.skip(padded(reader.u32()));
    }
    const base = type & ~MULTI_VALUED;
    const multi = (type & MULTI_VALUED) !== 0;
    const variable = VARIABLE_TYPES.has(base);
    const valueCount = multi || variable ? reader.u32() : 1;
    if (valueCount > MAX_VALUES) throw new MapiReadError(`MAPI value count ${valueCount} is not plausible`);
    const values: Buffer[] = [];
    for (let value = 0; value < valueCount; value++) {
      if (variable) {
        const length = reader.u32();
        values.push(reader.bytes(length));
        reader.skipPadding(padded(length) - length);
      } else {
        const size = FIXED_SIZES[base];
        if (size === undefined) throw new MapiReadError(`unknown MAPI property type 0x${type.toString(16)}`);
        values.push(reader.bytes(size));
      }
    }
    properties.push({ id, type: base, values });
  }
}

function padded(length: number): number {
  return length + ((4 - (length % 4)) % 4);
}

class BoundedReader {
  private offset = 0;

  constructor(private readonly data: Buffer) {}

  u16(): number {
    this.need(2);
    const value = this.data.readUInt16LE(this.offset);
    this.offset += 2;
    return value;
  }

  u32(): number {
    this.need(4);
    const value = this.data.readUInt32LE(this.offset);
    this.offset += 4;
    return value;
  }

  bytes(length: number): Buffer {
    this.need(length);
    const value = this.data.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  skip(length: number): void {
    this.need(length);
    this.offset += length;
  }

  /** Writers omit the padding after the last value; there is nothing to skip then. */
  skipPadding(length: number): void {
    this.offset = Math.min(this.offset + length, this.data.length);
  }

  private need(length: number): void {
    if (length < 0 || this.offset + length > this.data.length) throw new MapiReadError("MAPI property list is truncated");
  }
}
