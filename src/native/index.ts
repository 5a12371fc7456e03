/**
 * Loads the native addon (build/Release/tortie_native.node, built by `npm run
 * build:native`) and exports it typed by ./types.ts.
 *
 * The addon is loaded on first use, not at import: modules that only mention the
 * binding (and their unprivileged unit tests) import fine where it was never built.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../util/package-root.js';

import type { NativeBinding, NativeError } from './types.js';

export type * from './types.js';

const ADDON = join('build', 'Release', 'tortie_native.node');

// The package root is found in one place for the whole project.
export { packageRoot };

/** Where the addon is expected. */
export function addonPath(): string {
  return join(packageRoot(), ADDON);
}

let loaded: NativeBinding | undefined;

/** Loads the addon (once) and returns it; throws an Error that says how to build it. */
export function loadNative(): NativeBinding {
  if (loaded) return loaded;
  const root = packageRoot();
  const path = join(root, ADDON);
  if (!existsSync(path)) {
    throw new Error(
      `tortie native addon not built: ${path} is missing. Run \`npm run build:native\` ` +
        '(needs g++, libbpf-dev, libelf-dev, zlib1g-dev).',
    );
  }
  const require = createRequire(join(root, 'package.json'));
  loaded = require(path) as NativeBinding;
  return loaded;
}

/**
 * The binding. Each property is looked up on the addon when first used, so importing
 * this module never needs the addon to exist.
 */
export const native: NativeBinding = new Proxy({} as NativeBinding, {
  get(_target, property) {
    return Reflect.get(loadNative(), property) as unknown;
  },
  has(_target, property) {
    return Reflect.has(loadNative(), property);
  },
  ownKeys() {
    return Reflect.ownKeys(loadNative());
  },
  getOwnPropertyDescriptor(_target, property) {
    const descriptor = Reflect.getOwnPropertyDescriptor(loadNative(), property);
    // A proxy may only report configurable properties its (empty) target lacks.
    return descriptor ? { ...descriptor, configurable: true } : undefined;
  },
});

/** True for errors thrown by the binding (they carry `code` and `errno`). */
export function isNativeError(error: unknown): error is NativeError {
  return (
    error instanceof Error &&
    typeof (error as Partial<NativeError>).code === 'string' &&
    typeof (error as Partial<NativeError>).errno === 'number'
  );
}
