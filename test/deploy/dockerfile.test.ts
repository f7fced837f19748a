/**
 * The Dockerfile and docker-compose.yml, checked without a container engine (none runs
 * here): every file the Dockerfile copies exists and survives .dockerignore, the npm scripts
 * it runs exist, the entry point it starts is what the build emits, the ports it exposes are
 * the ones the configs use; docker-compose (Debian's 1.29) accepts the compose file, and
 * every config file a region mounts exists and loads with the real loader and the
 * environment the compose file gives that region.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load-config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

interface Instruction {
  op: string;
  args: string;
  stage: string;
}

/** Instructions with continuation lines joined and comments dropped, each tagged with its stage. */
function instructions(text: string): Instruction[] {
  const joined = text.replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  let stage = '';
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Z]+)\s+(.*)$/.exec(line);
    if (m === null || line.trimStart().startsWith('#')) continue;
    const [, op, args] = m as unknown as [string, string, string];
    if (op === 'FROM') stage = /\bAS\s+(\S+)/i.exec(args)?.[1] ?? args;
    out.push({ op, args: args.trim(), stage });
  }
  return out;
}

const steps = instructions(dockerfile);

/** Patterns of .dockerignore, as path prefixes or globs on the first segment. */
function ignored(rel: string): boolean {
  const patterns = fs
    .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  return patterns.some((p) => {
    const re = new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`);
    return re.test(rel);
  });
}

test('Dockerfile: two stages, the runtime as a non-root user with production dependencies only', () => {
  const froms = steps.filter((s) => s.op === 'FROM');
  assert.equal(froms.length, 2, 'a build stage and a runtime stage');
  const runtime = steps.filter((s) => s.stage === 'runtime');
  assert.ok(runtime.some((s) => s.op === 'RUN' && /npm ci\b.*--omit=dev/.test(s.args)), 'the runtime installs with npm ci --omit=dev');
  assert.ok(!runtime.some((s) => s.op === 'RUN' && /npm (ci|install)\b/.test(s.args) && !/--omit=dev/.test(s.args)), 'no dev install in the runtime');
  const user = runtime.filter((s) => s.op === 'USER').at(-1);
  assert.ok(user !== undefined && user.args !== 'root' && user.args !== '0', 'the runtime runs as a non-root user');
  assert.ok(runtime.some((s) => s.op === 'COPY' && /--from=build\s+\S*dist\b/.test(s.args)), 'the runtime copies dist/ from the build stage');
  assert.ok(!runtime.some((s) => s.op === 'COPY' && /^src\b/.test(s.args)), 'the runtime has no TypeScript sources');
});

test('Dockerfile: every COPY source exists in the repository and is not excluded by .dockerignore', () => {
  const copies = steps.filter((s) => (s.op === 'COPY' || s.op === 'ADD') && !s.args.includes('--from='));
  assert.ok(copies.length > 0);
  for (const copy of copies) {
    const words = copy.args.split(/\s+/).filter((w) => !w.startsWith('--'));
    for (const source of words.slice(0, -1)) {
      assert.ok(fs.existsSync(path.join(ROOT, source)), `COPY ${source}: no such file in the repository`);
      assert.ok(!ignored(source.replace(/\/$/, '')), `COPY ${source}: excluded by .dockerignore`);
    }
  }
});

test('Dockerfile: the npm scripts it runs exist, and the entry point is what the build emits', () => {
  for (const run of steps.filter((s) => s.op === 'RUN')) {
    for (const [, script] of run.args.matchAll(/npm run ([\w:-]+)/g)) assert.ok(pkg.scripts[script!] !== undefined, `RUN npm run ${script}: no such script in package.json`);
  }
  assert.match(pkg.scripts.build ?? '', /tsc -p tsconfig\.build\.json/);
  const entry = steps.find((s) => s.op === 'ENTRYPOINT');
  assert.ok(entry !== undefined);
  const argv = JSON.parse(entry.args) as string[];
  assert.deepEqual(argv.slice(0, 1), ['node']);
  // node's flags (node-flags.test.ts checks which), then the script.
  const script = argv.find((a, i) => i > 0 && !a.startsWith('-'));
  assert.ok(script !== undefined && fs.existsSync(path.join(ROOT, script)), `ENTRYPOINT ${script} does not exist`);
  // bin/meridian.js runs dist/cli/main.js, which tsc emits from src/cli/main.ts (rootDir
  // src, outDir dist); test/deploy/build.test.ts runs the emitted file.
  const build = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions: { rootDir: string; outDir: string } };
  assert.deepEqual([build.compilerOptions.rootDir, build.compilerOptions.outDir], ['src', 'dist']);
  assert.ok(fs.existsSync(path.join(ROOT, 'src/cli/main.ts')));
  assert.match(fs.readFileSync(path.join(ROOT, script), 'utf8'), /dist\/cli\/main\.js/);
});

test('Dockerfile: EXPOSEs the Kafka and admin ports, and its HEALTHCHECK asks the admin /v1/health', () => {
  const exposed = steps.filter((s) => s.op === 'EXPOSE').flatMap((s) => s.args.split(/\s+/).map(Number));
  assert.deepEqual(exposed.sort(), [9092, 9644]);
  const health = steps.find((s) => s.op === 'HEALTHCHECK');
  assert.ok(health !== undefined);
  assert.match(health.args, /http:\/\/127\.0\.0\.1:9644\/v1\/health/);
});

test('docker-compose.yml: Debian\'s docker-compose accepts it (config -q)', () => {
  const r = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, encoding: 'utf8' });
  assert.ok(r.error === undefined, 'docker-compose is not installed (run: bash scripts/install-tools.sh)');
  assert.equal(r.status, 0, r.stderr);
});

interface Service {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
}

const compose = parse(fs.readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const regions = Object.entries(compose.services).filter(([, s]) => s.command?.[0] === 'broker');

/** Compose's ${VAR:-default} as it resolves with none of the variables set on the host. */
function substitute(value: string): string {
  return value.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, '$1');
}

test('docker-compose.yml: three regions from the repository\'s Dockerfile, plus MinIO, Azurite and fake-gcs-server, with healthchecks', () => {
  assert.deepEqual(regions.map(([name]) => name).sort(), ['ap-south', 'eu-west', 'us-east']);
  for (const [name, service] of regions) {
    assert.equal(service.build, '.', `${name} is built from ./Dockerfile`);
    assert.ok(service.healthcheck !== undefined, `${name} has a healthcheck`);
    assert.equal(service.depends_on?.['storage-init']?.condition, 'service_completed_successfully');
  }
  const images = Object.values(compose.services).map((s) => s.image ?? '');
  for (const store of ['minio/minio', 'azure-storage/azurite', 'fake-gcs-server']) assert.ok(images.some((i) => i.includes(store)), `${store} is missing`);
  for (const store of ['minio', 'azurite', 'gcs']) {
    assert.ok(compose.services[store]?.healthcheck !== undefined, `${store} has a healthcheck`);
    assert.equal(compose.services['storage-init']?.depends_on?.[store]?.condition, 'service_healthy');
  }
  const init = compose.services['storage-init']!;
  for (const volume of init.volumes ?? []) assert.ok(fs.existsSync(path.join(ROOT, volume.split(':')[0]!)), `storage-init mounts ${volume}: missing`);
});

for (const [name, service] of regions) {
  test(`docker-compose.yml: ${name} mounts a config file that exists and loads with the environment compose gives it`, () => {
    const configArg = service.command![service.command!.indexOf('--config') + 1]!;
    const mount = (service.volumes ?? []).map((v) => v.split(':')).find(([, target]) => configArg.startsWith(`${target}/`));
    assert.ok(mount !== undefined, `${name}: nothing mounted at the directory of ${configArg}`);
    const file = path.join(ROOT, mount[0]!, path.relative(mount[1]!, configArg));
    assert.ok(fs.existsSync(file), `${name}: ${file} does not exist`);
    const env = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, substitute(String(v))]));
    const config = loadConfig({ file, env });
    assert.equal(config.region, name);
    assert.ok(config.admin.token !== null, `${name}: the admin API listens off loopback, so it needs a token`);
    assert.ok(config.dataDir.startsWith('/var/lib/meridian/'), `${name}: dataDir ${config.dataDir} is outside the image's volume`);
    // The ports the container listens on are the image's, published where the config
    // tells clients to connect.
    assert.equal(config.kafka.port, 9092);
    assert.equal(config.admin.port, 9644);
    const published = (service.ports ?? []).map((p) => p.split(':').map((x) => x.trim()));
    const kafka = published.find((p) => p.at(-1) === '9092');
    assert.ok(kafka !== undefined, `${name}: Kafka port not published`);
    assert.equal(config.kafka.advertisedPort, Number(kafka.at(-2)), `${name}: advertisedPort is the published port`);
    assert.ok(published.some((p) => p.at(-1) === '9644'), `${name}: admin port not published`);
    // Replication reaches the other regions by their compose service names.
    assert.deepEqual(config.replication.regions.map((r) => r.address).sort(), regions.map(([n]) => `${n}:9092`).sort());
  });
}
