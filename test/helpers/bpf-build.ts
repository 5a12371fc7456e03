/**
 * How tests compile BPF C of their own: with exactly the flags `bpf/Makefile` uses for
 * tortie's objects (`make print-cflags`), so a fixture sees the same include path — the
 * kernel UAPI headers and libbpf's, never glibc's — on any architecture.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BPF_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bpf');

let flags: string[] | undefined;

/** The clang flags of bpf/Makefile (absolute include paths). */
export function bpfCflags(): string[] {
  flags ??= execFileSync('make', ['-s', '--no-print-directory', '-C', BPF_DIR, 'print-cflags'], {
    encoding: 'utf8',
  })
    .trim()
    .split(/\s+/);
  return flags;
}

/**
 * Compiles one BPF C file to an object with the project's flags, plus `-D` for each of
 * `defines` (a fixture's variant, e.g. which kernel helper fails).
 */
export function compileBpf(source: string, out: string, defines: readonly string[] = []): string {
  execFileSync('clang', [...bpfCflags(), ...defines.map((d) => `-D${d}`), '-c', source, '-o', out]);
  return out;
}
