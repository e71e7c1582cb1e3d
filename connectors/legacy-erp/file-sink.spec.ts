import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatMoney, parseMoney } from '../../pipeline/model/money.ts';
import { parseCsvRecords } from '../csv.ts';
import { JOURNAL_FILE, LegacyErpFileSink, LegacyLineError, type LegacyManifest } from './file-sink.ts';

interface Dir extends AsyncDisposable {
  path: string;
}

async function tempDir(): Promise<Dir> {
  const path = await mkdtemp(join(tmpdir(), 'billstream-legacy-'));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

function charge(entryId: string, workDate: string, hours: string, rate: string, amount: string, currency = 'EUR'): Record<string, unknown> {
  return {
    externalId: `${entryId}:1:charge`, kind: 'charge', entryId, revision: 1, projectId: 'acme-web', customerId: 'acme',
    consultantId: 'kim-allen', role: 'senior', workDate, hours, rate, amount, currency, legalEntity: 'ACME-DE',
  };
}

const lines = [
  charge('e-1', '2026-02-02', '7.50', '150.00', '1125.00'),
  charge('e-2', '2026-02-03', '2.25', '150.00', '337.50'),
  charge('e-3', '2026-02-03', '1.00', '99.99', '99.99', 'USD'),
  { ...charge('e-4', '2026-02-04', '-3.00', '150.00', '-450.00'), externalId: 'e-4:1:reversal', kind: 'reversal' },
  // A line whose notes-like field holds a comma and a quote survives the CSV.
  { ...charge('e-5', '2026-02-05', '1.00', '10.00', '10.00'), role: 'lead, "senior"' },
];

const fixedClock = () => new Date('2026-02-06T18:00:00.123Z');

describe('legacy ERP file sink', () => {
  it('writes a batch whose manifest control totals and checksum equal the charges it holds', async () => {
    await using dir = await tempDir();
    const sink = new LegacyErpFileSink({ directory: dir.path, prefix: 'acme', now: fixedClock });
    await sink.start();
    const results = await sink.write(lines, 'billstream-key-1');

    const batch = 'acme-20260206T180000Z-' + createHash('sha256').update(lines.map((l) => String(l.externalId)).join('\n')).digest('hex').slice(0, 8);
    expect(results).toEqual(lines.map((l, i) => ({ externalId: l.externalId, documentId: `legacy:${batch}:${i + 1}`, status: 'created' })));
    expect((await readdir(dir.path)).sort()).toEqual([JOURNAL_FILE, `${batch}.csv`, `${batch}.manifest.json`]);

    const csv = await readFile(join(dir.path, `${batch}.csv`), 'utf8');
    const manifest = JSON.parse(await readFile(join(dir.path, `${batch}.manifest.json`), 'utf8')) as LegacyManifest;
    const rows = parseCsvRecords(csv).records.map((r) => r.values);
    expect(manifest).toMatchObject({ batch, file: `${batch}.csv`, recordCount: 5, idempotencyKey: 'billstream-key-1', createdAt: '2026-02-06T18:00:00.123Z' });
    expect(manifest.sha256).toBe(createHash('sha256').update(csv).digest('hex'));
    expect(rows.map((r) => r.role)).toContain('lead, "senior"');

    // The totals recomputed from the file itself, per currency.
    const recomputed = new Map<string, { lines: number; amount: bigint; hours: bigint }>();
    for (const row of rows) {
      const t = recomputed.get(row.currency as string) ?? { lines: 0, amount: 0n, hours: 0n };
      t.lines++;
      t.amount += parseMoney(row.amount as string);
      t.hours += parseMoney(row.hours as string);
      recomputed.set(row.currency as string, t);
    }
    expect(manifest.controlTotals).toEqual([...recomputed.entries()].sort().map(([currency, t]) => ({ currency, lines: t.lines, amount: formatMoney(t.amount), hours: formatMoney(t.hours) })));
    expect(manifest.controlTotals).toEqual([
      { currency: 'EUR', lines: 4, amount: '1022.50', hours: '7.75' },
      { currency: 'USD', lines: 1, amount: '99.99', hours: '1.00' },
    ]);
  });

  it('answers a retried posting with the same documents and writes nothing twice, also after a restart', async () => {
    await using dir = await tempDir();
    const sink = new LegacyErpFileSink({ directory: dir.path, now: fixedClock });
    await sink.start();
    const first = await sink.write(lines.slice(0, 2), 'k-1');
    const retried = await sink.write(lines.slice(0, 3), 'k-2');
    expect(retried.slice(0, 2)).toEqual(first.map((r) => ({ ...r, status: 'duplicate' })));
    expect(retried[2]?.status).toBe('created');
    expect((await readdir(dir.path)).filter((f) => f.endsWith('.csv'))).toHaveLength(2);

    const restarted = new LegacyErpFileSink({ directory: dir.path, now: fixedClock });
    await restarted.start();
    expect(await restarted.write(lines.slice(0, 3), 'k-3')).toEqual(retried.map((r) => ({ ...r, status: 'duplicate' })));
  });

  it('recovers from a crash: a manifest missing from the journal is adopted, a CSV without manifest is dropped', async () => {
    await using dir = await tempDir();
    const sink = new LegacyErpFileSink({ directory: dir.path, now: fixedClock });
    await sink.start();
    const [written] = await sink.write(lines.slice(0, 1), 'k-1');
    await rm(join(dir.path, JOURNAL_FILE)); // the crash came between manifest and journal
    await writeFile(join(dir.path, 'billstream-20260101T000000Z-deadbeef.csv'), 'half a batch'); // and one before a manifest
    await writeFile(join(dir.path, '.billstream-x.csv.tmp'), 'torn');

    const restarted = new LegacyErpFileSink({ directory: dir.path, now: fixedClock });
    await restarted.start();
    expect(restarted.documentIdOf(String(lines[0]?.externalId))).toBe(written?.documentId);
    const files = await readdir(dir.path);
    expect(files.some((f) => f.includes('deadbeef') || f.endsWith('.tmp'))).toBe(false);
    expect((await restarted.write(lines.slice(0, 1), 'k-2'))[0]?.status).toBe('duplicate');
  });

  it('marks a batch accepted when its .ack appears, and is unhealthy while one waits too long', async () => {
    await using dir = await tempDir();
    let now = new Date('2026-02-06T18:00:00Z');
    const sink = new LegacyErpFileSink({ directory: dir.path, ackTimeoutMs: 3_600_000, now: () => now });
    await sink.start();
    const [result] = await sink.write(lines.slice(0, 1), 'k-1');
    const batch = String(result?.documentId).split(':')[1] as string;
    now = new Date('2026-02-06T20:00:00Z');
    expect(sink.health()).toMatchObject({ ok: false, detail: expect.stringContaining(`batch ${batch}`) });
    await writeFile(join(dir.path, `${batch}.ack`), '');
    expect(await sink.pollAcknowledgements()).toEqual([batch]);
    expect(sink.batches()[0]?.acceptedAt).not.toBeNull();
    expect(sink.health()).toMatchObject({ ok: true });

    const restarted = new LegacyErpFileSink({ directory: dir.path, now: () => now });
    await restarted.start();
    expect(restarted.batches()[0]?.acceptedAt).not.toBeNull();
  });

  it('refuses a line without the fields a batch line needs', async () => {
    await using dir = await tempDir();
    const sink = new LegacyErpFileSink({ directory: dir.path });
    await sink.start();
    await expect(sink.write([{ externalId: 'x', kind: 'charge', amount: '1.00' }], 'k')).rejects.toBeInstanceOf(LegacyLineError);
  });
});
