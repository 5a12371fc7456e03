#!/usr/bin/env node
// One build: BPF objects (clang), the native addon (node-gyp over the system libbpf), the
// compiled CNI plugin (cc), then TypeScript. Fails early, naming the Debian packages, when a toolchain is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const missing = [];
const have = (cmd) =>
  spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
if (!have('clang')) missing.push('clang');
if (!have('llvm-strip') && !have('llvm-strip-14')) missing.push('llvm');
if (!existsSync('/usr/include/bpf/libbpf.h')) missing.push('libbpf-dev');
if (!existsSync('/usr/include/gelf.h')) missing.push('libelf-dev');
if (!have('make')) missing.push('make');
if (!have('g++')) missing.push('g++');
if (!have('cc')) missing.push('gcc');
if (missing.length > 0) {
  console.error(
    `tortie build: missing ${missing.join(', ')}.\n` +
      `Install with: apt-get install -y ${missing.join(' ')}`,
  );
  process.exit(1);
}

const only = process.argv[2];
const step = (name, cmd, args) => {
  if (only && only !== name) return;
  console.log(`== ${name}: ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { stdio: 'inherit' });
};
try {
  step('bpf', 'make', ['-C', 'bpf', '--no-print-directory']);
  step('native', 'npx', ['--no-install', 'node-gyp', 'rebuild', '--silent']);
  step('cni', 'make', ['-C', 'cni/plugin', '--no-print-directory']);
  step('ts', 'npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json']);
} catch (e) {
  console.error(`tortie build failed: ${e.message}`);
  process.exit(1);
}
