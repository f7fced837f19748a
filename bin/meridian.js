#!/usr/bin/env -S node --initial-old-space-size=128 --heap-growing-percent=100
// The `meridian` command. It runs one of two builds of the same CLI:
//
//   dist/cli/main.js  the compiled JavaScript (`npm run build`): what a production install
//                     (`npm ci --omit=dev`) and the Docker image run, with production
//                     dependencies only.
//   src/cli/main.ts   the TypeScript sources through tsx (a dev dependency): a clone with
//                     its dev dependencies needs no build step.
//
// dist/ wins when it exists and is at least as new as every file in src/. In a checkout
// where src/ was edited after the last build, the sources run instead (when tsx is
// installed), so `npm start` never runs stale code. Without dist/ and without tsx, the
// command says what to do instead of failing on a missing module.
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const compiled = new URL('dist/cli/main.js', root);
const sources = new URL('src/', root);

/** Newest modification time under a directory, in ms; 0 when it does not exist. */
function newestMtime(dir) {
  let newest = 0;
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const url = new URL(entry.name + (entry.isDirectory() ? '/' : ''), dir);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(url) : fs.statSync(url).mtimeMs);
  }
  return newest;
}

function compiledIsCurrent() {
  let built;
  try {
    built = fs.statSync(compiled).mtimeMs;
  } catch {
    return false;
  }
  return newestMtime(sources) <= built;
}

async function tsxRegister() {
  try {
    return (await import('tsx/esm/api')).register;
  } catch {
    return undefined;
  }
}

if (compiledIsCurrent()) {
  await import(compiled.href);
} else {
  const register = fs.existsSync(new URL('cli/main.ts', sources)) ? await tsxRegister() : undefined;
  if (register !== undefined) {
    register();
    await import(new URL('cli/main.ts', sources).href);
  } else if (fs.existsSync(compiled)) {
    // A production install whose sources are newer than dist/ (copied over it, say): dist/
    // is all that can run without tsx.
    await import(compiled.href);
  } else {
    process.stderr.write(
      `meridian: ${fileURLToPath(compiled)} is missing: run \`npm run build\` (or install the dev dependencies, \`npm ci\`, to run the TypeScript sources)\n`,
    );
    process.exit(2);
  }
}
