/**
 * The smallest BPF object libbpf opens: an ELF relocatable file (EM_BPF) with two
 * programs, `chk_tc` in section "tc" (returns TC_ACT_OK) and `chk_xdp` in section "xdp"
 * (returns XDP_PASS), a GPL license and a symbol table — no maps, no BTF, no relocations.
 *
 * The system check attaches these to a veth in a throwaway namespace to learn whether the
 * kernel takes a tc BPF filter and a driver-mode XDP program. Written here, byte by byte,
 * because the check must run before (and without) a compiler and without tortie's own
 * object, whose programs take the verifier half a second to load.
 */

const EM_BPF = 247;
const ET_REL = 1;
const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;
const SHT_STRTAB = 3;
const SHF_WRITE = 1;
const SHF_ALLOC = 2;
const SHF_EXECINSTR = 4;
const STB_GLOBAL = 1;
const STT_FUNC = 2;

const EHDR_SIZE = 64;
const SHDR_SIZE = 64;
const SYM_SIZE = 24;

export const PROBE_TC_PROGRAM = 'chk_tc';
export const PROBE_XDP_PROGRAM = 'chk_xdp';

/** `r0 = imm; exit`: BPF_ALU64 | BPF_MOV | BPF_K into r0, then BPF_JMP | BPF_EXIT. */
function returnConstant(value: number): Buffer {
  const insns = Buffer.alloc(16);
  insns.writeUInt8(0xb7, 0);
  insns.writeInt32LE(value, 4);
  insns.writeUInt8(0x95, 8);
  return insns;
}

interface Section {
  name: string;
  type: number;
  flags: number;
  data: Buffer;
  align: number;
  link?: number;
  info?: number;
  entsize?: number;
}

/** The object's bytes (write them to a file for native.openObject). */
export function probeObject(): Buffer {
  const strtab: Buffer[] = [Buffer.from([0])];
  let strtabSize = 1;
  const str = (s: string): number => {
    const at = strtabSize;
    const b = Buffer.from(`${s}\0`, 'latin1');
    strtab.push(b);
    strtabSize += b.length;
    return at;
  };
  const nameOf = new Map<string, number>();
  for (const s of [
    '.strtab',
    '.symtab',
    'tc',
    'xdp',
    'license',
    PROBE_TC_PROGRAM,
    PROBE_XDP_PROGRAM,
  ])
    nameOf.set(s, str(s));

  // Section indexes: 0 null, 1 .strtab, 2 tc, 3 xdp, 4 license, 5 .symtab.
  const symbol = (name: string, shndx: number, size: number): Buffer => {
    const b = Buffer.alloc(SYM_SIZE);
    b.writeUInt32LE(nameOf.get(name)!, 0);
    b.writeUInt8((STB_GLOBAL << 4) | STT_FUNC, 4);
    b.writeUInt16LE(shndx, 6);
    b.writeBigUInt64LE(0n, 8);
    b.writeBigUInt64LE(BigInt(size), 16);
    return b;
  };
  const tc = returnConstant(0); // TC_ACT_OK
  const xdp = returnConstant(2); // XDP_PASS
  const sections: Section[] = [
    { name: '.strtab', type: SHT_STRTAB, flags: 0, data: Buffer.concat(strtab), align: 1 },
    { name: 'tc', type: SHT_PROGBITS, flags: SHF_ALLOC | SHF_EXECINSTR, data: tc, align: 8 },
    { name: 'xdp', type: SHT_PROGBITS, flags: SHF_ALLOC | SHF_EXECINSTR, data: xdp, align: 8 },
    {
      name: 'license',
      type: SHT_PROGBITS,
      flags: SHF_ALLOC | SHF_WRITE,
      data: Buffer.from('GPL\0', 'latin1'),
      align: 1,
    },
    {
      name: '.symtab',
      type: SHT_SYMTAB,
      flags: 0,
      data: Buffer.concat([
        Buffer.alloc(SYM_SIZE),
        symbol(PROBE_TC_PROGRAM, 2, tc.length),
        symbol(PROBE_XDP_PROGRAM, 3, xdp.length),
      ]),
      align: 8,
      link: 1, // its names are in .strtab
      info: 1, // the first non-local symbol
      entsize: SYM_SIZE,
    },
  ];

  // Layout: header, each section's data (aligned), then the section header table.
  const chunks: Buffer[] = [];
  let offset = EHDR_SIZE;
  const offsets: number[] = [];
  for (const s of sections) {
    const pad = (s.align - (offset % s.align)) % s.align;
    if (pad > 0) chunks.push(Buffer.alloc(pad));
    offset += pad;
    offsets.push(offset);
    chunks.push(s.data);
    offset += s.data.length;
  }
  const pad = (8 - (offset % 8)) % 8;
  if (pad > 0) chunks.push(Buffer.alloc(pad));
  const shoff = offset + pad;

  const shdrs = Buffer.alloc(SHDR_SIZE * (sections.length + 1)); // [0] stays the null header
  sections.forEach((s, i) => {
    const at = SHDR_SIZE * (i + 1);
    shdrs.writeUInt32LE(nameOf.get(s.name)!, at);
    shdrs.writeUInt32LE(s.type, at + 4);
    shdrs.writeBigUInt64LE(BigInt(s.flags), at + 8);
    shdrs.writeBigUInt64LE(0n, at + 16); // sh_addr
    shdrs.writeBigUInt64LE(BigInt(offsets[i]!), at + 24);
    shdrs.writeBigUInt64LE(BigInt(s.data.length), at + 32);
    shdrs.writeUInt32LE(s.link ?? 0, at + 40);
    shdrs.writeUInt32LE(s.info ?? 0, at + 44);
    shdrs.writeBigUInt64LE(BigInt(s.align), at + 48);
    shdrs.writeBigUInt64LE(BigInt(s.entsize ?? 0), at + 56);
  });

  const ehdr = Buffer.alloc(EHDR_SIZE);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(ehdr, 0); // ELF, 64-bit, LE, v1
  ehdr.writeUInt16LE(ET_REL, 16);
  ehdr.writeUInt16LE(EM_BPF, 18);
  ehdr.writeUInt32LE(1, 20); // e_version
  ehdr.writeBigUInt64LE(0n, 24); // e_entry
  ehdr.writeBigUInt64LE(0n, 32); // e_phoff
  ehdr.writeBigUInt64LE(BigInt(shoff), 40);
  ehdr.writeUInt32LE(0, 48); // e_flags
  ehdr.writeUInt16LE(EHDR_SIZE, 52);
  ehdr.writeUInt16LE(0, 54); // e_phentsize
  ehdr.writeUInt16LE(0, 56); // e_phnum
  ehdr.writeUInt16LE(SHDR_SIZE, 58);
  ehdr.writeUInt16LE(sections.length + 1, 60);
  ehdr.writeUInt16LE(1, 62); // e_shstrndx: .strtab names the sections too

  return Buffer.concat([ehdr, ...chunks, shdrs]);
}
