// The ERP port the poster sees when a legacy ERP is still in service: each
// line of a posting goes to exactly one of the legacy file sink and the cloud
// ERP, by the routing rules in force, and the results of both come back in the
// posting's order. pipeline/erp-poster.ts is unchanged: it still posts one
// batch under one key and settles it by externalId.
//
// A reversal follows its charge: if the legacy sink holds the charge it
// reverses, the reversal is written there too, whatever the rules say now (a
// reversal booked in the other ERP would reverse nothing).
import { createHash } from 'node:crypto';
import type { ErpPort, ErpPostedLine } from '../../pipeline/erp-poster.ts';
import type { LegacyErpFileSink } from './file-sink.ts';
import { routeLine, type Destination, type RoutingRules } from './routing.ts';

export interface RoutedErpOptions {
  cloud: ErpPort;
  legacy: LegacyErpFileSink;
  /** The rules in force now (a watcher's `current`). */
  rules: () => RoutingRules | null;
  /** The project's region of a line; transactions carry none. */
  regionOf: (line: Record<string, unknown>) => string | undefined;
  /** Observes each posting's split. */
  onRouted?: (split: { legacy: string[]; cloud: string[] }) => void;
}

export class RoutedErp implements ErpPort {
  readonly #o: RoutedErpOptions;

  constructor(options: RoutedErpOptions) {
    this.#o = options;
  }

  /** Where one line goes now. */
  destinationOf(line: Record<string, unknown>): Destination {
    if (line.kind === 'reversal' && typeof line.entryId === 'string') {
      const charge = `${line.entryId}:${String(line.revision)}:charge`;
      return this.#o.legacy.documentIdOf(charge) !== undefined ? 'legacy' : 'cloud';
    }
    return routeLine(this.#o.rules(), line, this.#o.regionOf(line)).destination;
  }

  /**
   * Splits the posting, writes the legacy part as a batch file, posts the cloud
   * part, and answers every line. A cloud failure leaves the legacy batch
   * written; the poster's retry finds its lines there (`duplicate`, same documentId).
   */
  async postTransactions(transactions: Record<string, unknown>[], idempotencyKey: string): Promise<ErpPostedLine[]> {
    const legacy: Record<string, unknown>[] = [];
    const cloud: Record<string, unknown>[] = [];
    for (const line of transactions) (this.destinationOf(line) === 'legacy' ? legacy : cloud).push(line);
    this.#o.onRouted?.({ legacy: legacy.map((l) => String(l.externalId)), cloud: cloud.map((l) => String(l.externalId)) });

    const results = new Map<string, ErpPostedLine>();
    if (legacy.length > 0) {
      for (const r of await this.#o.legacy.write(legacy, idempotencyKey)) results.set(r.externalId, r);
    }
    if (cloud.length > 0) {
      // The whole posting keeps its key; a part gets a key of its own lines, so a
      // retry that splits the same way replays, and one that splits otherwise never reuses a key for another body.
      const key = legacy.length === 0
        ? idempotencyKey
        : `${idempotencyKey}-cloud-${createHash('sha256').update(cloud.map((l) => String(l.externalId)).join('\n')).digest('hex').slice(0, 12)}`;
      for (const r of await this.#o.cloud.postTransactions(cloud, key)) results.set(r.externalId, r);
    }
    return transactions.flatMap((line) => {
      const result = results.get(String(line.externalId));
      return result ? [result] : [];
    });
  }
}
