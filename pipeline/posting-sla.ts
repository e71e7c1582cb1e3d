// The posting SLA: approved time must reach the ERP within POSTING_SLA_MINUTES.
// A periodic check finds approved entries the pipeline still owes a posting
// (waiting for reference data, or charged with the charge not yet posted) past
// the SLA, and keeps one alert per region: raised when a region first has
// overdue entries, updated while it has, cleared when they have posted. Each
// raise and clear is stored (posting_sla_alert) and announced on
// `alerts.posting_sla.<region>` in the same transaction.
//
// The clock starts when the entry was approved, or when billstream received it
// if that was later: time approved days before a backfill reached billstream is
// not time billstream sat on (the approval-to-posting KPI still shows it).
// Entries turned into exceptions are the exception queue's business, not this
// alert's: they wait for a person, not for the pipeline.
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import { queueNatsMessages, type NatsOutboxRow } from './nats-outbox.ts';
import { formatHours, parseHours } from './model/money.ts';
import { PeriodicTask } from './periodic-task.ts';

export interface PostingSlaOptions {
  /** How long approved time may take to post. */
  slaMs: number;
  /** Pause between checks. @default 30 s */
  intervalMs?: number;
  /** Entry ids an alert names as examples. @default 20 */
  sampleSize?: number;
  /** Called after a check raised or cleared alerts (wakes the NATS relay). */
  onChange?: (result: SlaCheckResult) => void;
  onError?: (err: unknown) => void;
}

export interface RegionBreach {
  region: string;
  overdueEntries: number;
  /** Hours of the overdue entries, two-decimal string. */
  overdueHours: string;
  /** When the longest-waiting overdue entry's SLA clock started. */
  oldestDueFrom: string;
  sampleEntryIds: string[];
}

export interface SlaCheckResult {
  /** False when another instance held the check's lock; nothing was looked at. */
  checked: boolean;
  raised: string[];
  cleared: string[];
  firing: RegionBreach[];
}

/** Instances share one check at a time: the alert rows are the shared state. */
const CHECK_LOCK_KEY = 'billstream.posting_sla';

interface BreachRow {
  region: string;
  overdue_entries: number;
  hours: string;
  oldest: string;
  sample: string[];
}

interface AlertRow {
  id: string;
  region: string;
  raised_at: string;
  cleared_at: string | null;
}

const INSTANT = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/** The `alerts.posting_sla.<region>` message of a raise or a clear (updates in between are not announced). */
export function postingSlaMessage(alert: AlertRow, status: 'firing' | 'cleared', slaMinutes: number, breach: RegionBreach | null): NatsOutboxRow {
  return {
    subject: `alerts.posting_sla.${alert.region}`,
    msg_id: `posting_sla:${alert.id}:${status}`,
    payload: {
      alert: 'posting_sla',
      alertId: alert.id,
      region: alert.region,
      status,
      slaMinutes,
      overdueEntries: breach?.overdueEntries ?? 0,
      overdueHours: breach?.overdueHours ?? '0.00',
      oldestDueFrom: breach?.oldestDueFrom ?? null,
      sampleEntryIds: breach?.sampleEntryIds ?? [],
      raisedAt: alert.raised_at,
      clearedAt: alert.cleared_at,
    },
    headers: null,
  };
}

export class PostingSlaMonitor {
  readonly #orm: MikroORM;
  readonly #options: Required<Omit<PostingSlaOptions, 'onChange' | 'onError'>> & Pick<PostingSlaOptions, 'onChange' | 'onError'>;
  readonly #task: PeriodicTask;

  constructor(orm: MikroORM, options: PostingSlaOptions) {
    if (!(options.slaMs > 0)) throw new RangeError(`posting SLA must be positive, got ${options.slaMs} ms`);
    this.#orm = orm;
    this.#options = { intervalMs: 30_000, sampleSize: 20, ...options };
    this.#task = new PeriodicTask(async () => {
      const result = await this.checkOnce();
      if (result.raised.length > 0 || result.cleared.length > 0) this.#options.onChange?.(result);
    }, this.#options.intervalMs, (err) => this.#options.onError?.(err));
  }

  get slaMinutes(): number {
    return this.#options.slaMs / 60_000;
  }

  start(): void {
    this.#task.start();
  }

  stop(): Promise<void> {
    return this.#task.stop();
  }

  /** Approved entries past the SLA and not posted, by region. */
  async overdue(em: EntityManager = this.#orm.em.fork() as EntityManager): Promise<RegionBreach[]> {
    // Driven from the waiting entries' partial index and the ERP queue (erp_pending),
    // so a check costs what is in flight, not what was ever posted.
    const rows = await em.execute<BreachRow[]>(
      `with owed as (
         select r.entry_id, r.region, r.hours_hundredths, greatest(r.approved_at, r.first_seen_at) as due_from
           from entry_revision r where r.stage = 'waiting' and r.status = 'approved'
         union all
         select r.entry_id, r.region, r.hours_hundredths, greatest(r.approved_at, r.first_seen_at) as due_from
           from erp_pending p join erp_outbox o on o.id = p.id join entry_revision r on r.entry_id = o.entry_id and r.revision = o.revision
          where o.kind = 'charge' and r.status = 'approved')
       select region, count(*)::int as overdue_entries, sum(hours_hundredths)::text as hours, ${INSTANT('min(due_from)')} as oldest,
              (array_agg(entry_id order by due_from, entry_id))[1:?] as sample
         from owed where due_from <= now() - (? * interval '1 millisecond')
        group by region order by region`,
      [this.#options.sampleSize, this.#options.slaMs]);
    return rows.map((r) => ({ region: r.region, overdueEntries: r.overdue_entries, overdueHours: formatHours(BigInt(r.hours)), oldestDueFrom: r.oldest, sampleEntryIds: r.sample }));
  }

  /** One check: raises, updates and clears the regions' alerts. */
  async checkOnce(): Promise<SlaCheckResult> {
    return this.#orm.em.fork().transactional(async (tx) => {
      const em = tx as EntityManager;
      const [lock] = await em.execute<{ locked: boolean }[]>(`select pg_try_advisory_xact_lock(hashtext(?)) as locked`, [CHECK_LOCK_KEY]);
      if (!lock?.locked) return { checked: false, raised: [], cleared: [], firing: [] };

      const breaches = await this.overdue(em);
      const firing = await em.execute<AlertRow[]>(
        `select id::text as id, region, ${INSTANT('raised_at')} as raised_at, null as cleared_at from posting_sla_alert where status = 'firing'`);
      const firingByRegion = new Map(firing.map((a) => [a.region, a]));
      const breachRegions = new Set(breaches.map((b) => b.region));
      const messages: NatsOutboxRow[] = [];
      const raised: string[] = [];
      const cleared: string[] = [];

      for (const breach of breaches) {
        const values = [breach.overdueEntries, parseHours(breach.overdueHours).toString(), breach.oldestDueFrom, JSON.stringify(breach.sampleEntryIds)];
        const existing = firingByRegion.get(breach.region);
        if (existing) {
          await em.execute(
            `update posting_sla_alert set overdue_entries = ?, overdue_hours_hundredths = ?, oldest_approved_at = ?::timestamptz, sample_entry_ids = ?::jsonb, checked_at = now() where id = ?`,
            [...values, existing.id]);
          continue;
        }
        const [alert] = await em.execute<AlertRow[]>(
          `insert into posting_sla_alert (region, status, sla_minutes, overdue_entries, overdue_hours_hundredths, oldest_approved_at, sample_entry_ids)
           values (?, 'firing', ?, ?, ?, ?::timestamptz, ?::jsonb)
           returning id::text as id, region, ${INSTANT('raised_at')} as raised_at, null as cleared_at`,
          [breach.region, this.slaMinutes, ...values]);
        messages.push(postingSlaMessage(alert as AlertRow, 'firing', this.slaMinutes, breach));
        raised.push(breach.region);
      }
      for (const alert of firing) {
        if (breachRegions.has(alert.region)) continue;
        const [done] = await em.execute<AlertRow[]>(
          `update posting_sla_alert set status = 'cleared', cleared_at = now(), checked_at = now(), overdue_entries = 0, overdue_hours_hundredths = 0, sample_entry_ids = '[]'::jsonb
           where id = ? returning id::text as id, region, ${INSTANT('raised_at')} as raised_at, ${INSTANT('cleared_at')} as cleared_at`,
          [alert.id]);
        messages.push(postingSlaMessage(done as AlertRow, 'cleared', this.slaMinutes, null));
        cleared.push(alert.region);
      }
      await queueNatsMessages(em, messages);
      return { checked: true, raised, cleared, firing: breaches };
    });
  }
}
