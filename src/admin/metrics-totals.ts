/**
 * Prometheus counters from totals that other components keep, whose sources come and go:
 * a replication worker stops when its policy changes and a new one starts from zero, a
 * partition log goes with its topic. Summing what the live sources report would make a
 * counter go down, which Prometheus reads as a restart of the broker. So each series keeps
 * what it has counted and adds what each source added since the last scrape; a source that
 * reports less than before has restarted, and all it reports is new.
 *
 * Memory: one number per source seen at the last scrape (forgotten when a source is gone)
 * and one per series.
 */
export class MonotonicTotals {
  /** source key → its total at the last scrape. */
  #last = new Map<string, number>();
  /** series key → what it has counted so far. */
  #series = new Map<string, { labels: Record<string, string>; value: number }>();

  /**
   * One scrape: every live source with the series it counts into and its total now.
   * Returns every series ever counted (a series whose sources are gone keeps its value).
   */
  update(sources: Iterable<{ source: string; labels: Record<string, string>; total: number }>): Array<{ labels: Record<string, string>; value: number }> {
    const seen = new Map<string, number>();
    for (const { source, labels, total } of sources) {
      const before = this.#last.get(source) ?? 0;
      const added = total >= before ? total - before : total;
      seen.set(source, total);
      const key = seriesKey(labels);
      const s = this.#series.get(key);
      if (s === undefined) this.#series.set(key, { labels, value: added });
      else s.value += added;
    }
    this.#last = seen;
    return [...this.#series.values()];
  }

  /** Drops the series whose labels match (a deleted topic's series end with it). */
  forget(match: (labels: Record<string, string>) => boolean): void {
    for (const [key, s] of this.#series) if (match(s.labels)) this.#series.delete(key);
  }
}

function seriesKey(labels: Record<string, string>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}\u0000${labels[k]}`)
    .join('\u0001');
}
