/**
 * Certificates for TLS tests, made at test time with the openssl CLI (node's crypto cannot
 * sign X.509) in a temporary directory, so no private key is ever committed. EC P-256 keys:
 * fast to make. Every certificate is valid for a day, except `expired`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface CertFiles {
  cert: string;
  key: string;
}

export interface Pki {
  dir: string;
  /** The CA of the broker and the good clients. */
  ca: CertFiles;
  /** Another CA, trusted by nobody. */
  otherCa: CertFiles;
  /** The broker: CN=localhost, SAN IP:127.0.0.1 and DNS:localhost, serial 0x1001. */
  broker: CertFiles;
  /** A client: C=US, O=Meridian, OU=ops, CN=alice. */
  client: CertFiles;
  /** A client whose certificate has expired (CN=mallory). */
  expired: CertFiles;
  /** A client signed by otherCa (CN=eve). */
  foreign: CertFiles;
  /** Signs a new certificate; `serial` in hex. */
  issue(name: string, subject: string, opts: { serial: string; days?: number; ca?: CertFiles; server?: boolean }): CertFiles;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new Error('the TLS tests need the openssl command-line tool: run scripts/install-tools.sh (Debian package openssl)');
    throw err;
  }
}

export function makePki(dir: string): Pki {
  const at = (name: string) => path.join(dir, name);
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string, cn: string): CertFiles => {
    openssl(['req', '-x509', ...newKey, '-keyout', at(`${name}.key`), '-out', at(`${name}.pem`), '-days', '2', '-subj', `/CN=${cn}`], dir);
    return { cert: at(`${name}.pem`), key: at(`${name}.key`) };
  };
  const ca = makeCa('ca', 'Meridian Test CA');
  const otherCa = makeCa('other-ca', 'Some Other CA');
  const issue: Pki['issue'] = (name, subject, opts) => {
    const signer = opts.ca ?? ca;
    openssl(['req', ...newKey, '-keyout', at(`${name}.key`), '-out', at(`${name}.csr`), '-subj', subject], dir);
    const ext = at(`${name}.ext`);
    fs.writeFileSync(ext, opts.server ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n');
    openssl(['x509', '-req', '-in', at(`${name}.csr`), '-CA', signer.cert, '-CAkey', signer.key, '-set_serial', `0x${opts.serial}`, '-days', String(opts.days ?? 1), '-extfile', ext, '-out', at(`${name}.pem`)], dir);
    return { cert: at(`${name}.pem`), key: at(`${name}.key`) };
  };
  return {
    dir,
    ca,
    otherCa,
    broker: issue('broker', '/CN=localhost', { serial: '1001', server: true }),
    client: issue('alice', '/C=US/O=Meridian/OU=ops/CN=alice', { serial: '2001' }),
    // notAfter a day before notBefore (now): expired.
    expired: issue('mallory', '/CN=mallory', { serial: '2002', days: -1 }),
    foreign: issue('eve', '/CN=eve', { serial: '2003', ca: otherCa }),
    issue,
  };
}
