/**
 * A scrape parsed by a real Prometheus text parser (parse-prometheus-text-format), and how
 * the metrics tests read it: a family by name, and the sum of the series whose labels
 * include the ones asked for (as a PromQL `sum(name{labels})`).
 */
import assert from 'node:assert/strict';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { BrokerMetrics } from '../../src/admin/metrics.js';

type Family = ReturnType<typeof parsePrometheusTextFormat>[number];

export class ParsedScrape {
  readonly #families: Map<string, Family>;
  readonly #text: string;

  constructor(text: string) {
    this.#families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    this.#text = text;
  }

  static async of(metrics: BrokerMetrics): Promise<ParsedScrape> {
    return new ParsedScrape(await metrics.render());
  }

  /** Scrapes `GET /metrics` of an admin API, as Prometheus does. */
  static async scrape(admin: { host: string; port: number }): Promise<ParsedScrape> {
    const res = await fetch(`http://${admin.host}:${admin.port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    return new ParsedScrape(await res.text());
  }

  family(name: string): Family {
    const f = this.#families.get(name);
    assert.ok(f, `the scrape has no ${name}`);
    return f;
  }

  has(name: string): boolean {
    return this.#families.has(name);
  }

  /** Sum of the values of the series that carry `labels`. */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.series(name, labels).reduce((n, s) => n + Number(s.value), 0);
  }

  /**
   * Sum of the observation counts of a histogram's series that carry `labels`. The parser
   * (1.1.1) folds the series of a labelled histogram into one bucket map without labels or
   * counts, so after checking that it parsed the family as a histogram, the `_count` sample
   * lines are read from the text.
   */
  histogramCount(name: string, labels: Record<string, string> = {}): number {
    assert.equal(this.family(name).type, 'HISTOGRAM');
    let n = 0;
    for (const line of this.#text.split('\n')) {
      const m = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
      if (m === null || m[1] !== `${name}_count`) continue;
      const own = Object.fromEntries([...m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
      if (Object.entries(labels).every(([k, v]) => own[k] === v)) n += Number(m[3]);
    }
    return n;
  }

  /** The series of `name` carrying `labels` (none when no series of it exists yet). */
  series(name: string, labels: Record<string, string> = {}): Family['metrics'] {
    return (this.#families.get(name)?.metrics ?? []).filter((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  }
}
