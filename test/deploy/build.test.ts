/**
 * A production install runs compiled JavaScript on production dependencies only
 * (issue 12): `npm run build`'s output imports nothing from devDependencies, and the
 * `meridian` command starts from it with no tsx and no dev package anywhere it can resolve.
 *
 * The production install is laid out as `npm ci --omit=dev` lays it out, from the lockfile
 * (every package not marked dev), hard-linked from this checkout's node_modules so the test
 * needs no network: a temp directory outside the repository, so Node cannot find the
 * checkout's dev packages by walking up.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tmpDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const t = tmpDir('meridian-build-');
const app = path.join(t.dir, 'app');
after(t.cleanup);

/** The environment without anything that would load tsx or find the checkout's packages. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MERIDIAN_') && k !== 'NODE_OPTIONS' && k !== 'NODE_PATH'));
}

before(() => {
  // npm run build's command, with the output sent to the temp app instead of ./dist.
  fs.mkdirSync(app);
  const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', path.join(app, 'dist')], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  assert.equal(tsc.status, 0, `npm run build failed:\n${tsc.stdout}${tsc.stderr}`);
  for (const item of ['package.json', 'package-lock.json', 'bin', 'config']) fs.cpSync(path.join(ROOT, item), path.join(app, item), { recursive: true });
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  for (const [key, entry] of Object.entries(lock.packages)) {
    // Top-level packages carry their nested node_modules with them.
    if (key === '' || entry.dev === true || key.split('node_modules/').length !== 2) continue;
    const from = path.join(ROOT, key);
    if (!fs.existsSync(from)) continue; // an optional package for another platform
    fs.mkdirSync(path.dirname(path.join(app, key)), { recursive: true });
    const cp = spawnSync('cp', ['-al', from, path.join(app, key)]);
    if (cp.status !== 0) fs.cpSync(from, path.join(app, key), { recursive: true }); // another filesystem: copy
  }
});

function emittedFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? emittedFiles(path.join(dir, e.name)) : e.name.endsWith('.js') ? [path.join(dir, e.name)] : []));
}

/** `@scope/name/sub` -> `@scope/name`; `name/sub` -> `name`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

test('the build emits dist/cli/main.js, and dist/ imports only Node built-ins and production dependencies', () => {
  const dist = path.join(app, 'dist');
  assert.ok(fs.existsSync(path.join(dist, 'cli/main.js')), 'dist/cli/main.js (the entry point bin/meridian.js runs)');
  const builtins = new Set(builtinModules);
  const problems: string[] = [];
  const used = new Set<string>();
  for (const file of emittedFiles(dist)) {
    const text = fs.readFileSync(file, 'utf8');
    const specifiers = [
      // import ... from 'x' / export ... from 'x' (possibly over several lines), import 'x'
      ...text.matchAll(/^\s*(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/gm),
      ...text.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
      // import('x'), require('x')
      ...text.matchAll(/\b(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].map((m) => m[1]!);
    for (const s of specifiers) {
      if (s.startsWith('.') || s.startsWith('node:') || builtins.has(s)) continue;
      const name = packageOf(s);
      used.add(name);
      if (pkg.dependencies[name] === undefined) {
        problems.push(`${path.relative(dist, file)} imports ${s}${pkg.devDependencies[name] ? ' (a devDependency)' : ' (not a dependency)'}`);
      }
    }
  }
  assert.deepEqual(problems, []);
  // The scan saw the real imports (a regex that matched nothing would pass vacuously).
  for (const name of ['pino', 'yaml', 'ajv', '@aws-sdk/client-s3']) assert.ok(used.has(name), `dist imports ${name}`);
});

test('the production install has no dev dependency, and `meridian version` runs from dist/ without tsx', () => {
  for (const dev of ['tsx', 'typescript', 'kafkajs', 's3rver']) assert.equal(fs.existsSync(path.join(app, 'node_modules', dev)), false, `${dev} is in the production install`);
  assert.equal(fs.existsSync(path.join(app, 'src')), false);
  const r = spawnSync(process.execPath, [path.join(app, 'bin/meridian.js'), 'version'], { cwd: t.dir, env: cleanEnv(), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), pkg.version);
  const direct = spawnSync(process.execPath, [path.join(app, 'dist/cli/main.js'), 'version'], { cwd: t.dir, env: cleanEnv(), encoding: 'utf8' });
  assert.equal(direct.status, 0, direct.stderr);
  assert.equal(direct.stdout.trim(), pkg.version);
});

test('the production install starts a broker and stops it on SIGTERM', async () => {
  const dataDir = path.join(t.dir, 'data');
  const file = path.join(t.dir, 'one.yaml');
  fs.writeFileSync(file, `region: us-east\ndataDir: ${dataDir}\nkafka:\n  port: 0\ntiered:\n  enabled: true\n  store:\n    type: fs\n    dir: ${path.join(t.dir, 'tiered')}\n`);
  const child = spawn(process.execPath, [path.join(app, 'bin/meridian.js'), 'broker', '--config', file], { cwd: t.dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  try {
    await waitFor('the broker to run', () => {
      if (child.exitCode !== null) throw new Error(`exited ${child.exitCode}: ${err}${out}`);
      return out.includes('meridian is running');
    }, 60_000, 50, () => `stdout: ${out} stderr: ${err}`);
    // Not a terminal: JSON lines.
    for (const line of out.trim().split('\n')) JSON.parse(line);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, err);
  assert.equal(fs.existsSync(path.join(dataDir, 'meridian.lock')), false);
});

test('bin/meridian.js without dist/ or tsx says to build instead of failing on a missing module', () => {
  const bare = path.join(t.dir, 'bare');
  fs.mkdirSync(bare);
  fs.cpSync(path.join(ROOT, 'bin'), path.join(bare, 'bin'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'package.json'), path.join(bare, 'package.json'));
  const r = spawnSync(process.execPath, [path.join(bare, 'bin/meridian.js'), 'version'], { cwd: t.dir, env: cleanEnv(), encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /dist\/cli\/main\.js is missing: run `npm run build`/);
});
