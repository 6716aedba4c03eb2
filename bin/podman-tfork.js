#!/usr/bin/env node
// The CLI runs from the TypeScript build in dist/. A checkout that was never
// built (npm install --ignore-scripts, a deleted dist/) says what to run
// instead of failing in the module loader.
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
// `npm run build` also writes the CLI as one file: node starts it ~60 ms sooner than the ~130
// modules it is made of. Only while it is at least as new as the build it was made from.
const bundle = new URL('../dist/cli/main.bundle.js', import.meta.url);
const newer = (a, b) => {
  try {
    return statSync(fileURLToPath(a)).mtimeMs >= statSync(fileURLToPath(b)).mtimeMs;
  } catch {
    return false;
  }
};
if (!existsSync(fileURLToPath(entry))) {
  const dir = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(
    `Error: podman-tfork is not built (${fileURLToPath(entry)} is missing)\n` +
      `  hint: in ${dir} run \`npm run setup\` as root (builds it and sets up the host), or \`npm run build\` to build only\n`,
  );
  process.exit(127);
}
const { main } = await import((newer(bundle, entry) ? bundle : entry).href);
process.exitCode = await main(process.argv.slice(2));
