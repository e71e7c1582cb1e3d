// What limits billstream on the bench's machine, from the run's own figures.
// All the processes share the machine's cores: billstream, nats-server,
// PostgreSQL, the ERP sandbox and the bench. Whatever billstream's code costs,
// the others' work for each entry it decides (the broker storing and delivering
// its messages, PostgreSQL writing its rows, the ERP answering its posts) has to
// fit on those cores too. That work alone caps the rate: the ceiling below is
// the rate at which it would fill every core if billstream's own process cost
// nothing. It is an upper bound, so a target above it cannot be met on this
// machine by any change to billstream's code, only by one to what it asks of
// the others (or by more cores).
import type { CpuGroups } from './cpu-usage.ts';

export interface CpuBudgetInput {
  cores: number;
  brokerLimit: { messages: number; perSecond: number; cpuSeconds: CpuGroups };
  /** The drain: `cpuSeconds` by process group, `postgresCpuSeconds` PostgreSQL's by whom it worked for. */
  billstream: { entries: number; cpuSeconds: CpuGroups; postgresCpuSeconds: CpuGroups };
  /** The share of the broker limit the target asks for (0.5). */
  toBrokerLimitTarget: number;
}

export interface Ceiling {
  /** CPU-µs per entry of every process but billstream's. */
  othersMicrosPerEntry: number;
  /** Entries per second at which that work alone fills every core. */
  perSecond: number;
  toBrokerLimit: number;
}

export interface CpuBudget {
  cores: number;
  /** CPU-µs per entry decided, by process group (the drain's). */
  perEntryMicros: CpuGroups;
  /** CPU-µs per message republished, by process group (the broker limit's run). */
  perBrokerMessageMicros: CpuGroups;
  /** Cores the broker limit's run kept busy, on average. */
  brokerCoresBusy: number;
  /** CPU-µs per entry, every process together, that the target's rate leaves on these cores. */
  targetMicrosPerEntry: number;
  /** With billstream's own CPU at zero. */
  ceiling: Ceiling;
  /**
   * The same without the ERP sandbox and its PostgreSQL sessions: in production
   * the ERP runs elsewhere, so this is the ceiling with only billstream's own
   * servers on the machine.
   */
  ceilingWithoutErp: Ceiling;
}

const ERP = 'ERP sandbox';

function sum(groups: CpuGroups): number {
  return Object.values(groups).reduce((a, b) => a + b, 0);
}

function perUnit(groups: CpuGroups, units: number): CpuGroups {
  const micros: CpuGroups = {};
  for (const [group, seconds] of Object.entries(groups)) micros[group] = (seconds * 1e6) / units;
  return micros;
}

function ceilingOf(othersSeconds: number, input: CpuBudgetInput): Ceiling {
  const othersMicrosPerEntry = (othersSeconds * 1e6) / input.billstream.entries;
  const perSecond = othersMicrosPerEntry > 0 ? (input.cores * 1e6) / othersMicrosPerEntry : Number.POSITIVE_INFINITY;
  return { othersMicrosPerEntry, perSecond, toBrokerLimit: perSecond / input.brokerLimit.perSecond };
}

export function cpuBudget(input: CpuBudgetInput): CpuBudget {
  const { billstream, brokerLimit } = input;
  const all = sum(billstream.cpuSeconds);
  const others = all - (billstream.cpuSeconds.billstream ?? 0);
  const erp = (billstream.cpuSeconds[ERP] ?? 0) + (billstream.postgresCpuSeconds[ERP] ?? 0);
  const brokerSeconds = brokerLimit.messages / brokerLimit.perSecond;
  return {
    cores: input.cores,
    perEntryMicros: perUnit(billstream.cpuSeconds, billstream.entries),
    perBrokerMessageMicros: perUnit(brokerLimit.cpuSeconds, brokerLimit.messages),
    brokerCoresBusy: sum(brokerLimit.cpuSeconds) / brokerSeconds,
    targetMicrosPerEntry: (input.cores * 1e6) / (input.toBrokerLimitTarget * brokerLimit.perSecond),
    ceiling: ceilingOf(others, input),
    ceilingWithoutErp: ceilingOf(others - erp, input),
  };
}
