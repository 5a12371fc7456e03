/**
 * Fixed-layout struct codecs that mirror C structs byte for byte. A struct is declared
 * as its ordered fields; offsets follow C's natural alignment (what clang does for the
 * BPF target), and the codec BTF test compares them with the compiled object.
 *
 * Byte order (bpf/tortie_maps.h): `be16`/`be32` fields are network order (addresses,
 * ports, LPM key tails) and hold the host-order numeric value; all others are
 * little-endian. `u64` fields are bigints. Padding fields (`{ pad: n }`) are written as
 * zeros and left out of decoded values.
 */

export type ScalarType = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32';
export interface PadType {
  readonly pad: number;
}
export type FieldType = ScalarType | PadType;
export type FieldDef = readonly [name: string, type: FieldType];

type JsValue<T> = T extends 'u64' ? bigint : T extends ScalarType ? number : never;

/** The JS object a struct of these fields decodes to (padding omitted). */
export type StructValue<D extends readonly FieldDef[]> = {
  [F in D[number] as F[1] extends PadType ? never : F[0]]: JsValue<F[1]>;
};

/** One member as laid out in memory (what BTF reports too). */
export interface FieldLayout {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

export interface Codec<T> {
  /** The C struct's name in bpf/tortie_maps.h (or a C scalar type's name). */
  readonly cName: string;
  /** Bytes, including trailing padding (sizeof). */
  readonly size: number;
  /** Every member, padding included, in declaration order. */
  readonly fields: readonly FieldLayout[];
  encode(value: T): Buffer;
  /** Reads `size` bytes at `offset`; throws when the buffer is too short. */
  decode(buf: Buffer, offset?: number): T;
}

/** The value type a codec encodes. */
export type CodecValue<C> = C extends Codec<infer T> ? T : never;

const SCALAR_SIZE: Record<ScalarType, number> = { u8: 1, u16: 2, u32: 4, u64: 8, be16: 2, be32: 4 };
const SCALAR_MAX: Record<Exclude<ScalarType, 'u64'>, number> = {
  u8: 0xff,
  u16: 0xffff,
  u32: 0xffffffff,
  be16: 0xffff,
  be32: 0xffffffff,
};
const U64_MAX = (1n << 64n) - 1n;

interface Placed {
  readonly name: string;
  readonly type: FieldType;
  readonly offset: number;
  readonly size: number;
}

function isPad(type: FieldType): type is PadType {
  return typeof type === 'object';
}

function layout(cName: string, defs: readonly FieldDef[]): { placed: Placed[]; size: number } {
  const placed: Placed[] = [];
  const names = new Set<string>();
  let offset = 0;
  let maxAlign = 1;
  for (const [name, type] of defs) {
    if (names.has(name)) throw new Error(`${cName}: field ${name} declared twice`);
    names.add(name);
    const size = isPad(type) ? type.pad : SCALAR_SIZE[type];
    const align = isPad(type) ? 1 : size;
    if (!Number.isInteger(size) || size <= 0)
      throw new Error(`${cName}.${name}: bad padding size ${size}`);
    offset = Math.ceil(offset / align) * align;
    placed.push({ name, type, offset, size });
    offset += size;
    maxAlign = Math.max(maxAlign, align);
  }
  return { placed, size: Math.ceil(offset / maxAlign) * maxAlign };
}

function writeScalar(
  buf: Buffer,
  f: Placed,
  type: ScalarType,
  value: unknown,
  cName: string,
): void {
  const where = `${cName}.${f.name}`;
  if (type === 'u64') {
    if (typeof value !== 'bigint' || value < 0n || value > U64_MAX) {
      throw new Error(`${where}: expected a u64 bigint, got ${String(value)}`);
    }
    buf.writeBigUInt64LE(value, f.offset);
    return;
  }
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 0 ||
    value > SCALAR_MAX[type]
  ) {
    throw new Error(
      `${where}: expected an integer in 0..${SCALAR_MAX[type]} (${type}), got ${String(value)}`,
    );
  }
  switch (type) {
    case 'u8':
      buf.writeUInt8(value, f.offset);
      break;
    case 'u16':
      buf.writeUInt16LE(value, f.offset);
      break;
    case 'u32':
      buf.writeUInt32LE(value, f.offset);
      break;
    case 'be16':
      buf.writeUInt16BE(value, f.offset);
      break;
    case 'be32':
      buf.writeUInt32BE(value, f.offset);
      break;
  }
}

function readScalar(buf: Buffer, at: number, type: ScalarType): number | bigint {
  switch (type) {
    case 'u8':
      return buf.readUInt8(at);
    case 'u16':
      return buf.readUInt16LE(at);
    case 'u32':
      return buf.readUInt32LE(at);
    case 'u64':
      return buf.readBigUInt64LE(at);
    case 'be16':
      return buf.readUInt16BE(at);
    case 'be32':
      return buf.readUInt32BE(at);
  }
}

/** A codec for the C struct `cName` with these members, in declaration order. */
export function defineStruct<const D extends readonly FieldDef[]>(
  cName: string,
  defs: D,
): Codec<StructValue<D>> {
  const { placed, size } = layout(cName, defs);
  const fields: FieldLayout[] = placed.map(({ name, offset, size: s }) => ({
    name,
    offset,
    size: s,
  }));
  return {
    cName,
    size,
    fields,
    encode(value: StructValue<D>): Buffer {
      const buf = Buffer.alloc(size);
      const record = value as Record<string, unknown>;
      for (const f of placed) {
        if (isPad(f.type)) continue;
        if (!(f.name in record)) throw new Error(`${cName}: field ${f.name} is missing`);
        writeScalar(buf, f, f.type, record[f.name], cName);
      }
      return buf;
    },
    decode(buf: Buffer, offset = 0): StructValue<D> {
      if (buf.length - offset < size) {
        throw new Error(
          `${cName}: need ${size} bytes at offset ${offset}, buffer has ${buf.length}`,
        );
      }
      const out: Record<string, number | bigint> = {};
      for (const f of placed) {
        if (isPad(f.type)) continue;
        out[f.name] = readScalar(buf, offset + f.offset, f.type);
      }
      return out as StructValue<D>;
    },
  };
}

/** A codec for a bare C scalar (map keys and values that are plain integers). */
export function defineScalar<T extends ScalarType>(cName: string, type: T): Codec<JsValue<T>> {
  const field: Placed = { name: 'value', type, offset: 0, size: SCALAR_SIZE[type] };
  return {
    cName,
    size: field.size,
    fields: [{ name: 'value', offset: 0, size: field.size }],
    encode(value: JsValue<T>): Buffer {
      const buf = Buffer.alloc(field.size);
      writeScalar(buf, field, type, value, cName);
      return buf;
    },
    decode(buf: Buffer, offset = 0): JsValue<T> {
      if (buf.length - offset < field.size) {
        throw new Error(
          `${cName}: need ${field.size} bytes at offset ${offset}, buffer has ${buf.length}`,
        );
      }
      return readScalar(buf, offset, type) as JsValue<T>;
    },
  };
}
