/**
 * Reports of promote and failback, saved as JSON under `<dataDir>/dr/reports/` and named by
 * topic, operation and epoch (`promote-orders-e1.json`), so the same command retried after
 * a crash writes the same report again instead of a second one.
 *
 * A promote's recovery point, per partition: the last offset of the old primary's records
 * this region holds; the old primary's last end offset it reported (OffsetSync) and how old
 * that report is; hence the records that did not replicate (its end minus what is held: its
 * records are the whole of its log under a one-way policy) and the seconds of data they
 * span (its last record's timestamp minus that of the last record held).
 *
 * On a region cluster the reports are the region's: each is written to etcd with the phase
 * that names it (cluster/dr-sync.ts) and every broker keeps a copy here, so every broker
 * answers `get`, `has` and `list` from its own directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ErrorCode, MeridianError } from '../errors.js';
import { writeFileAtomicSync } from '../storage/fs-util.js';

export interface RecoveryPartition {
  partition: number;
  /** Last offset of the old primary's log held here (-1: none). */
  lastOriginOffsetHeld: string;
  /** The old primary's end offset as last reported (null: it never reported one). */
  originEndOffset: string | null;
  /** Age of that report at the promote, ms. */
  originEndAgeMs: number | null;
  /** Records the old primary held that never arrived (null: unknown, no report). */
  missingRecords: string | null;
  /** Their offsets in the old primary's log, inclusive; null when none are missing. */
  missingOffsets: { first: string; last: string } | null;
  /** Seconds of data they span: the old primary's last timestamp minus the last one held. */
  missingSeconds: number | null;
  /** Region clusters: why this partition was not measured (the promoting broker holds no replica of it). */
  notMeasured?: string;
}

export interface PromoteReport {
  kind: 'promote';
  id: string;
  topic: string;
  region: string;
  formerPrimary: string;
  epoch: number;
  policy: string;
  at: string;
  partitions: RecoveryPartition[];
  totals: { missingRecords: string | null; maxMissingSeconds: number | null };
}

export interface DivergentPartition {
  partition: number;
  /** The first offset of this region's log the new primary lacks (where the log is cut). */
  truncateAt: string;
  records: string;
  offsets: { first: string; last: string } | null;
  timestamps: { first: string; last: string } | null;
  /** Offset range of the preserved copy in the side topic (after failback). */
  preservedAt?: { first: string; last: string } | null;
}

export interface FailbackReport {
  kind: 'failback';
  id: string;
  topic: string;
  region: string;
  newPrimary: string;
  epoch: number;
  dryRun: boolean;
  sideTopic: string;
  at: string;
  partitions: DivergentPartition[];
  totals: { records: string };
  completed: boolean;
}

export type DrReport = PromoteReport | FailbackReport;

export function reportId(kind: DrReport['kind'], topic: string, epoch: number): string {
  return `${kind}-${topic}-e${epoch}`;
}

export class ReportStore {
  readonly dir: string;

  constructor(drDir: string) {
    this.dir = path.join(drDir, 'reports');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  save(report: DrReport): void {
    writeFileAtomicSync(path.join(this.dir, `${report.id}.json`), JSON.stringify(report, null, 2) + '\n');
  }

  get(id: string): DrReport {
    if (!/^[A-Za-z0-9._-]+$/.test(id)) throw new MeridianError(ErrorCode.InvalidDrRequest, `${JSON.stringify(id)} is not a report id`);
    const file = path.join(this.dir, `${id}.json`);
    if (!fs.existsSync(file)) throw new MeridianError(ErrorCode.DrNotFound, `no DR report ${id} in this region`);
    return JSON.parse(fs.readFileSync(file, 'utf8')) as DrReport;
  }

  has(id: string): boolean {
    return fs.existsSync(path.join(this.dir, `${id}.json`));
  }

  list(): Array<{ id: string; kind: string; topic: string; at: string }> {
    return fs
      .readdirSync(this.dir)
      .filter((n) => n.endsWith('.json'))
      .map((n) => {
        const r = JSON.parse(fs.readFileSync(path.join(this.dir, n), 'utf8')) as DrReport;
        return { id: r.id, kind: r.kind, topic: r.topic, at: r.at };
      })
      .sort((a, b) => a.at.localeCompare(b.at));
  }
}
