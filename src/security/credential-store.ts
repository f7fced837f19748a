/**
 * SCRAM credentials, per user and mechanism, in `<dataDir>/security/scram-credentials.json`.
 *
 * What is kept is what RFC 5802 lets a server keep: salt, iteration count, StoredKey and
 * ServerKey. Never the password, nor the salted password: StoredKey verifies a client's
 * proof without letting the holder of the file log in (it would need ClientKey), and the
 * salted password would. ServerKey lets the holder impersonate the server to a client, so the
 * file is still a secret: the `security` directory is 0700 and the file 0600 (tightened on
 * open if someone loosened them).
 *
 * Credentials come from an admin (Kafka's AlterUserScramCredentials sends a salt and a
 * salted password, computed by the client; our own tooling may send a password) or from
 * the config (`ensureBootstrap`, for the first admin user). Iterations are held to Kafka's
 * 4096..16384.
 *
 * Writes are atomic and fsynced (writeFileAtomicSync) and happen before the in-memory map
 * changes, so a failed write leaves memory as the disk is. Calls are synchronous: one at a
 * time on Node's thread, each write complete before the next call.
 *
 * The file also holds `decoyKey`, the key of the decoy credentials ScramServer shows for
 * unknown users: kept across restarts so an unknown user's salt does not change when the
 * broker restarts while a real user's stays.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, MeridianError } from '../errors.js';
import { jsonErrorWhere } from './json-error.js';
import { storageError, writeFileAtomicSync } from '../storage/fs-util.js';
import {
  credentialFromSaltedPassword,
  credentialMatchesPassword,
  isScramMechanism,
  MAX_ITERATIONS,
  MIN_ITERATIONS,
  SCRAM_MECHANISMS,
  saltPassword,
  scramKeyLength,
  ScramMechanism,
  ScramServer,
  type ScramServerOptions,
  type StoredCredential,
} from './scram.js';

export const SECURITY_DIR = 'security';
export const SCRAM_CREDENTIALS_FILE = 'scram-credentials.json';

/** Iterations of a credential made from a password when none are asked for: Kafka's default. */
export const DEFAULT_ITERATIONS = MIN_ITERATIONS;

const SALT_BYTES = 32;
/** Bounds of a salt sent by a client (AlterUserScramCredentials): non-empty, and not absurd. */
const MAX_SALT_BYTES = 1024;

/** What Kafka's AlterUserScramCredentials upsertion carries: the client salted the password. */
export interface SaltedPassword {
  readonly salt: Buffer;
  readonly saltedPassword: Buffer;
  readonly iterations: number;
}

export interface UserScramCredentials {
  readonly user: string;
  /** One per mechanism the user has, in SCRAM_MECHANISMS order; never a key or salt. */
  readonly credentials: ReadonlyArray<{ readonly mechanism: ScramMechanism; readonly iterations: number }>;
}

type Users = ReadonlyMap<string, ReadonlyMap<ScramMechanism, StoredCredential>>;

interface CredentialFile {
  version: 1;
  decoyKey: string;
  users: Record<string, Partial<Record<ScramMechanism, { salt: string; iterations: number; storedKey: string; serverKey: string }>>>;
}

export class CredentialStore {
  readonly file: string;
  #users: Users;
  #decoyKey: Buffer;
  /** In memory only (a scratch copy that computes a region-wide change): nothing is written. */
  readonly #memory: boolean;

  private constructor(file: string, users: Users, decoyKey: Buffer, memory = false) {
    this.#memory = memory;
    this.file = file;
    this.#users = users;
    this.#decoyKey = decoyKey;
  }

  /** Loads `<dataDir>/security/scram-credentials.json` (none yet: no users); a damaged file fails the open. */
  static open(dataDir: string): CredentialStore {
    const dir = path.join(dataDir, SECURITY_DIR);
    const file = path.join(dir, SCRAM_CREDENTIALS_FILE);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      tighten(dir, 0o700);
      if (fs.existsSync(file)) tighten(file, 0o600);
    } catch (err) {
      throw storageError(`preparing ${dir}`, err);
    }
    const loaded = readCredentialFile(file);
    return new CredentialStore(file, loaded?.users ?? new Map(), loaded?.decoyKey ?? crypto.randomBytes(32));
  }

  /**
   * A store in memory only, holding the credentials of `doc` (a scram-credentials.json text;
   * `what` names where it comes from in an error): a region cluster runs a change on such a
   * copy of the region's credentials to learn the document to write (cluster/security-sync.ts).
   * Without a document: no users and this store's decoy key, so a region's first document
   * keeps the key of the broker that wrote it.
   */
  inMemoryCopy(doc: string | undefined, what: string): CredentialStore {
    if (doc === undefined) return new CredentialStore('', new Map(), this.#decoyKey, true);
    const parsed = parseCredentials(doc, what);
    return new CredentialStore('', parsed.users, parsed.decoyKey, true);
  }

  /** Whether any user has a credential. */
  get size(): number {
    return this.#users.size;
  }

  /** The credentials as scram-credentials.json holds them: the region's document in etcd. A secret: never log it. */
  exportDoc(): string {
    return serialize(this.#users, this.#decoyKey);
  }

  /**
   * Makes `doc` (a scram-credentials.json text: the region's, from etcd) this store's
   * credentials and decoy key: parsed first (CORRUPT_CREDENTIAL_FILE naming `what`, and
   * nothing changes), in force for the next login at once, then written to this broker's
   * file as its copy. Returns the error of the local write, or null.
   */
  replaceFrom(doc: string, what: string): MeridianError | null {
    const parsed = parseCredentials(doc, what);
    if (doc === this.exportDoc()) return null;
    this.#users = parsed.users;
    this.#decoyKey = parsed.decoyKey;
    try {
      this.#write(doc);
      return null;
    } catch (err) {
      return err as MeridianError;
    }
  }

  /** The credential ScramServer checks a login against; undefined for an unknown user or mechanism. */
  lookup(user: string, mechanism: ScramMechanism): StoredCredential | undefined {
    return this.#users.get(user)?.get(mechanism);
  }

  /** A ScramServer for one connection, reading this store (live: a credential changed later counts for later logins). */
  scramServer(mechanism: ScramMechanism, options: Pick<ScramServerOptions, 'nonce'> = {}): ScramServer {
    return new ScramServer(mechanism, (user) => this.lookup(user, mechanism), { ...options, decoyKey: this.#decoyKey });
  }

  /**
   * Creates or replaces `user`'s credential for `mechanism`, from a password (salted here
   * with a fresh random salt) or from a client's salt and salted password.
   * `options.iterations` applies to a password (default 4096); a salted password carries its own.
   */
  upsert(user: string, mechanism: ScramMechanism, secret: string | SaltedPassword, options: { iterations?: number } = {}): void {
    checkUser(user);
    checkMechanism(mechanism);
    const credential = typeof secret === 'string' ? fromPassword(mechanism, secret, options.iterations ?? DEFAULT_ITERATIONS) : fromSaltedPassword(mechanism, secret);
    this.#commit(withCredential(this.#users, user, mechanism, credential));
  }

  /** Removes `user`'s credential for `mechanism` (the user goes with its last one). */
  delete(user: string, mechanism: ScramMechanism): void {
    checkMechanism(mechanism);
    const mechanisms = this.#users.get(user);
    if (mechanisms === undefined || !mechanisms.has(mechanism)) {
      throw new MeridianError(ErrorCode.CredentialNotFound, `user ${JSON.stringify(user)} has no ${mechanism} credential to delete`);
    }
    const next = new Map(this.#users);
    const rest = new Map(mechanisms);
    rest.delete(mechanism);
    if (rest.size === 0) next.delete(user);
    else next.set(user, rest);
    this.#commit(next);
  }

  /** Every user with the mechanisms and iterations it has, sorted by name: never a key or salt. */
  describe(): UserScramCredentials[] {
    return [...this.#users.keys()].sort().map((user) => {
      const mechanisms = this.#users.get(user)!;
      return {
        user,
        credentials: SCRAM_MECHANISMS.filter((m) => mechanisms.has(m)).map((mechanism) => ({ mechanism, iterations: mechanisms.get(mechanism)!.iterations })),
      };
    });
  }

  /**
   * Makes sure `user` logs in with `password` under each of `mechanisms` (the config's
   * admin user): a credential that already matches the password is kept, so a restart
   * rewrites nothing; a missing one or one from another password is replaced. Returns the
   * mechanisms it wrote. With `onlyMissing` an existing credential is kept whatever its
   * password (a region cluster: a password rotated through AlterUserScramCredentials must
   * not come back when a broker restarts with the config's old one).
   */
  ensureBootstrap(user: string, password: string, mechanisms: readonly ScramMechanism[] = SCRAM_MECHANISMS, options: { onlyMissing?: boolean } = {}): ScramMechanism[] {
    checkUser(user);
    for (const m of mechanisms) checkMechanism(m);
    let next: Users = this.#users;
    const written: ScramMechanism[] = [];
    for (const mechanism of new Set(mechanisms)) {
      const current = next.get(user)?.get(mechanism);
      if (current !== undefined && options.onlyMissing === true) continue;
      if (current !== undefined && password !== '' && credentialMatchesPassword(mechanism, current, password)) continue;
      next = withCredential(next, user, mechanism, fromPassword(mechanism, password, DEFAULT_ITERATIONS));
      written.push(mechanism);
    }
    if (written.length > 0) this.#commit(next);
    return written;
  }

  /**
   * Whether `password` is `user`'s, checked against the user's SCRAM credential (SHA-256
   * first): lets PLAIN logins use the same users. Costs a PBKDF2 of the credential's
   * iterations; an unknown user costs one of the default iterations against a decoy.
   */
  verifyPassword(user: string, password: string): boolean {
    const mechanisms = this.#users.get(user);
    const mechanism = mechanisms !== undefined && !mechanisms.has(ScramMechanism.Sha256) ? ScramMechanism.Sha512 : ScramMechanism.Sha256;
    const stored = mechanisms?.get(mechanism);
    const decoy: StoredCredential = {
      salt: crypto.createHmac('sha256', this.#decoyKey).update(`plain\0${user}`).digest(),
      iterations: DEFAULT_ITERATIONS,
      storedKey: Buffer.alloc(scramKeyLength(mechanism)),
      serverKey: Buffer.alloc(scramKeyLength(mechanism)),
    };
    const matches = credentialMatchesPassword(mechanism, stored ?? decoy, password);
    return matches && stored !== undefined;
  }

  #commit(next: Users): void {
    if (!this.#memory) this.#write(serialize(next, this.#decoyKey));
    this.#users = next;
  }

  #write(text: string): void {
    try {
      writeFileAtomicSync(this.file, text);
      // The temp file was created with the umask's mode; the 0700 directory kept it private
      // until now. fsync so the mode survives a crash along with the content.
      fs.chmodSync(this.file, 0o600);
      const fd = fs.openSync(this.file, 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (err) {
      throw storageError(`writing ${this.file}`, err);
    }
  }
}

function serialize(users: Users, decoyKey: Buffer): string {
  const data: CredentialFile = { version: 1, decoyKey: decoyKey.toString('base64'), users: {} };
  for (const [user, mechanisms] of users) {
    const entry: CredentialFile['users'][string] = {};
    for (const [mechanism, c] of mechanisms) {
      entry[mechanism] = { salt: c.salt.toString('base64'), iterations: c.iterations, storedKey: c.storedKey.toString('base64'), serverKey: c.serverKey.toString('base64') };
    }
    data.users[user] = entry;
  }
  return JSON.stringify(data, null, 2) + '\n';
}

function withCredential(users: Users, user: string, mechanism: ScramMechanism, credential: StoredCredential): Users {
  const next = new Map(users);
  const mechanisms = new Map(users.get(user) ?? []);
  mechanisms.set(mechanism, credential);
  next.set(user, mechanisms);
  return next;
}

function fromPassword(mechanism: ScramMechanism, password: string, iterations: number): StoredCredential {
  if (typeof password !== 'string' || password === '') throw unacceptable('the password is empty');
  checkIterations(iterations);
  const salt = crypto.randomBytes(SALT_BYTES);
  return credentialFromSaltedPassword(mechanism, salt, saltPassword(mechanism, password, salt, iterations), iterations);
}

function fromSaltedPassword(mechanism: ScramMechanism, secret: SaltedPassword): StoredCredential {
  checkIterations(secret.iterations);
  if (!Buffer.isBuffer(secret.salt) || secret.salt.length === 0 || secret.salt.length > MAX_SALT_BYTES) throw unacceptable(`the salt must be 1..${MAX_SALT_BYTES} bytes`);
  const length = scramKeyLength(mechanism);
  if (!Buffer.isBuffer(secret.saltedPassword) || secret.saltedPassword.length !== length) throw unacceptable(`a ${mechanism} salted password is ${length} bytes`);
  return credentialFromSaltedPassword(mechanism, secret.salt, secret.saltedPassword, secret.iterations);
}

function checkUser(user: string): void {
  if (typeof user !== 'string' || user === '') throw unacceptable('the user name is empty');
  // NUL cannot travel in PLAIN or SCRAM; a lone surrogate would not survive UTF-8.
  if (user.includes('\0') || Buffer.from(user, 'utf8').toString('utf8') !== user) throw unacceptable('the user name holds NUL or is not valid Unicode');
}

function checkMechanism(mechanism: string): asserts mechanism is ScramMechanism {
  if (!isScramMechanism(mechanism)) throw new MeridianError(ErrorCode.UnsupportedSaslMechanism, `unsupported SCRAM mechanism ${JSON.stringify(mechanism)} (expected ${SCRAM_MECHANISMS.join(' or ')})`);
}

function checkIterations(iterations: number): void {
  if (!Number.isInteger(iterations) || iterations < MIN_ITERATIONS || iterations > MAX_ITERATIONS) {
    throw unacceptable(`iterations must be an integer in ${MIN_ITERATIONS}..${MAX_ITERATIONS}, got ${iterations}`);
  }
}

function unacceptable(why: string): MeridianError {
  return new MeridianError(ErrorCode.UnacceptableCredential, `unacceptable SCRAM credential: ${why}`);
}

/** Clears group and other bits a human may have added (a restore from backup, a chmod). */
function tighten(target: string, mode: number): void {
  if ((fs.statSync(target).mode & 0o777 & ~mode) !== 0) fs.chmodSync(target, mode);
}

function readCredentialFile(file: string): { users: Users; decoyKey: Buffer } | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw storageError(`reading ${file}`, err);
  }
  return parseCredentials(text, file);
}

/** Parses a scram-credentials.json text; `file` names it in the error (a path, or the etcd key). */
function parseCredentials(text: string, file: string): { users: Users; decoyKey: Buffer } {
  const corrupt = (why: string): MeridianError =>
    new MeridianError(ErrorCode.CorruptCredentialFile, `${file}: ${why}; restore it from a backup (or remove it and recreate the users)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not valid JSON (${jsonErrorWhere(err)})`);
  }
  const f = parsed as CredentialFile;
  if (typeof f !== 'object' || f === null || f.version !== 1 || typeof f.users !== 'object' || f.users === null) {
    throw corrupt('not a Meridian SCRAM credential file (expected { version: 1, decoyKey, users })');
  }
  const decoyKey = base64Field(f.decoyKey);
  if (decoyKey === undefined || decoyKey.length < 16) throw corrupt('decoyKey is missing or too short');
  const users = new Map<string, Map<ScramMechanism, StoredCredential>>();
  for (const [user, entry] of Object.entries(f.users)) {
    // Entry keys are user names, not secrets: naming one in the error is fine.
    if (user === '' || typeof entry !== 'object' || entry === null) throw corrupt(`the entry of user ${JSON.stringify(user)} is malformed`);
    const mechanisms = new Map<ScramMechanism, StoredCredential>();
    for (const [mechanism, c] of Object.entries(entry)) {
      if (!isScramMechanism(mechanism)) throw corrupt(`user ${JSON.stringify(user)} has an unknown mechanism ${JSON.stringify(mechanism)}`);
      const length = scramKeyLength(mechanism);
      const salt = base64Field(c?.salt);
      const storedKey = base64Field(c?.storedKey);
      const serverKey = base64Field(c?.serverKey);
      const iterations = c?.iterations as number;
      if (
        salt === undefined ||
        salt.length === 0 ||
        storedKey?.length !== length ||
        serverKey?.length !== length ||
        !Number.isInteger(iterations) ||
        iterations < MIN_ITERATIONS ||
        iterations > MAX_ITERATIONS
      ) {
        throw corrupt(`the ${mechanism} credential of user ${JSON.stringify(user)} is malformed`);
      }
      mechanisms.set(mechanism, { salt, iterations, storedKey: storedKey!, serverKey: serverKey! });
    }
    if (mechanisms.size > 0) users.set(user, mechanisms);
  }
  return { users, decoyKey };
}

function base64Field(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) return undefined;
  return Buffer.from(value, 'base64');
}
