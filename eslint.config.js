import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** What the agent may import: everything it wires together below the lab. */
const AGENT = [
  'bgp',
  'dataplane',
  'datastore',
  'ipam',
  'iptables',
  'loader',
  'maps',
  'native',
  'plumbing',
  'policy',
  'util',
];

/**
 * The arrows of docs/architecture.md ("Arrows point one way"): what each folder of src/
 * may import besides itself. Anything else in src/ is refused, and so are bench/, bin/,
 * test/ and scripts/ — src/ knows none of them. `folder/file.js` allows one file of a
 * folder the arrows otherwise refuse (a debt, named where it is allowed).
 */
const ARROWS = {
  util: [],
  native: ['util'],
  policy: ['util'],
  // Pod veths, addresses, routes and rules through rtnetlink (native/netlink.cc).
  plumbing: ['native', 'util'],
  maps: ['native', 'util'],
  loader: ['maps', 'native', 'util'],
  datastore: ['policy', 'util'],
  ipam: ['datastore', 'policy', 'util'],
  dataplane: ['loader', 'maps', 'native', 'policy', 'util'],
  iptables: ['ipam', 'plumbing', 'policy', 'util'],
  bgp: ['datastore', 'ipam', 'policy', 'util'],
  preflight: ['native', 'plumbing', 'util'],
  // Debt: the CNI plugin waits for the agent's endpoint report through agent/status.ts,
  // which holds the status keys in the store; they belong in src/datastore.
  cni: ['datastore', 'ipam', 'plumbing', 'policy', 'util', 'agent/status.js'],
  agent: AGENT,
  // The lab runs agents (with their CNI servers), pods through the CNI plugin and the
  // preflight checks.
  lab: [...AGENT, 'agent', 'cni', 'preflight'],
  // The CLI drives everything in src/ (filled in below).
  cli: [],
};
ARROWS.cli = Object.keys(ARROWS).filter((f) => f !== 'cli');
/** Outside src/: what no module of src/ may import. */
const ABOVE_SRC = ['bench', 'bin', 'test', 'scripts'];
/** Deepest folder nesting under src/<folder>/ the rules are written for. */
const MAX_DEPTH = 4;

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** `a(/|$)`, or for a folder with allowed files `a/(?!(f1|f2)$)`. */
function targetAlternatives(folder) {
  const allowedFiles = ARROWS[folder] ?? [];
  const alternatives = [];
  for (const target of Object.keys(ARROWS)) {
    if (target === folder || allowedFiles.includes(target)) continue;
    const files = allowedFiles
      .filter((a) => a.startsWith(`${target}/`))
      .map((a) => escape(a.slice(target.length + 1)));
    alternatives.push(
      files.length === 0 ? `${target}(\\/|$)` : `${target}\\/(?!(${files.join('|')})$)`,
    );
  }
  return alternatives;
}

/**
 * The same refusal for static imports and re-exports (no-restricted-imports), `import()`
 * and `typeof import()` (no-restricted-syntax): a source matching `regex`.
 */
function refuse(files, rules) {
  const patterns = rules.map(({ regex, message }) => ({ regex, message }));
  const selectors = rules.flatMap(({ regex, message }) => {
    const literal = `/${regex}/`;
    return [
      { selector: `ImportExpression[source.value=${literal}]`, message },
      { selector: `TSImportType[argument.literal.value=${literal}]`, message },
    ];
  });
  return {
    files,
    rules: {
      'no-restricted-imports': ['error', { patterns }],
      'no-restricted-syntax': ['error', ...selectors],
    },
  };
}

function arrowRules() {
  const configs = [];
  for (const folder of Object.keys(ARROWS)) {
    const allowed = ARROWS[folder].map((a) => `src/${a}`).join(', ') || 'nothing';
    const message = `src/${folder} may import ${allowed} (docs/architecture.md, "Arrows"), and nothing outside src/`;
    // A file `depth` folders below src/ reaches src/ with `depth` times "../".
    for (let depth = 1; depth <= MAX_DEPTH; depth++) {
      const up = `^(\\.\\.\\/){${depth}}`;
      const refused = targetAlternatives(folder);
      configs.push(
        refuse(
          [`src/${folder}/${'*/'.repeat(depth - 1)}*.ts`],
          [
            ...(refused.length === 0
              ? []
              : [{ regex: `${up}(\\.\\.\\/src\\/)?(${refused.join('|')})`, message }]),
            { regex: `${up}\\.\\.\\/(${ABOVE_SRC.join('|')})(\\/|$)`, message },
          ],
        ),
      );
    }
  }
  // The entry composes src/cli and bench; bench may use all of src/, never the entry.
  configs.push(
    refuse(
      ['bin/*.ts'],
      [
        {
          regex: '^\\.\\.\\/(src\\/(?!cli\\/)|test\\/|scripts\\/)',
          message: 'bin/ composes src/cli and bench/ only (docs/architecture.md, "Arrows")',
        },
      ],
    ),
    refuse(
      ['bench/*.ts'],
      [
        {
          regex: '^\\.\\.\\/(bin|test)(\\/|$)',
          message: 'bench/ may import src/, never bin/ or test/ (docs/architecture.md, "Arrows")',
        },
      ],
    ),
  );
  return configs;
}

export default tseslint.config(
  { ignores: ['dist/**', 'build/**', 'node_modules/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Build and CI scripts run on Node.
    files: ['scripts/**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  ...arrowRules(),
);
