import { describe, expect, it } from 'vitest';
import { cpuBudget, type CpuBudgetInput } from './cpu-budget.ts';

// A 100k drain shaped like the bench's: 100,000 entries decided, the broker
// limit 100,000 messages at 50,000/s (2 s), on 2 cores.
const run: CpuBudgetInput = {
  cores: 2,
  toBrokerLimitTarget: 0.5,
  brokerLimit: { messages: 100_000, perSecond: 50_000, cpuSeconds: { 'nats-server': 2.0, bench: 1.5 } },
  billstream: {
    entries: 100_000,
    cpuSeconds: { billstream: 12.0, postgres: 7.9, 'nats-server': 3.0, 'ERP sandbox': 1.2, bench: 0.1 },
    postgresCpuSeconds: { billstream: 6.4, 'ERP sandbox': 1.5 },
  },
};

describe('cpuBudget', () => {
  it('gives each process group\'s CPU per entry decided and per message republished', () => {
    const budget = cpuBudget(run);
    expect(budget.perEntryMicros.billstream).toBeCloseTo(120);
    expect(budget.perEntryMicros.postgres).toBeCloseTo(79);
    expect(budget.perEntryMicros['nats-server']).toBeCloseTo(30);
    expect(budget.perBrokerMessageMicros).toEqual({ 'nats-server': expect.closeTo(20), bench: expect.closeTo(15) });
    // 3.5 CPU-s over the broker limit's 2 s.
    expect(budget.brokerCoresBusy).toBeCloseTo(1.75);
  });

  it('leaves every process together 2 cores over half the broker limit\'s rate: 80 µs an entry at 25,000/s', () => {
    expect(cpuBudget(run).targetMicrosPerEntry).toBeCloseTo(80);
  });

  it('caps billstream at the rate the other processes\' work for its entries alone fills the cores at', () => {
    const { ceiling } = cpuBudget(run);
    // postgres 7.9 + nats-server 3.0 + ERP sandbox 1.2 + bench 0.1: billstream's own 12.0 is left out.
    expect(ceiling.othersMicrosPerEntry).toBeCloseTo(122);
    expect(ceiling.perSecond).toBeCloseTo(2e6 / 122);
    expect(ceiling.toBrokerLimit).toBeCloseTo(2e6 / 122 / 50_000);
  });

  it('without the ERP sandbox, leaves out both its process and PostgreSQL\'s work for it', () => {
    const { ceilingWithoutErp } = cpuBudget(run);
    // 12.2 less the sandbox's 1.2 and PostgreSQL's 1.5 for it.
    expect(ceilingWithoutErp.othersMicrosPerEntry).toBeCloseTo(95);
    expect(ceilingWithoutErp.toBrokerLimit).toBeCloseTo(2e6 / 95 / 50_000);
  });

  it('has more room with more cores: the ceiling grows with them, the others\' work per entry does not', () => {
    const four = cpuBudget({ ...run, cores: 4 });
    expect(four.ceiling.othersMicrosPerEntry).toBeCloseTo(122);
    expect(four.ceiling.toBrokerLimit).toBeCloseTo(2 * cpuBudget(run).ceiling.toBrokerLimit);
    expect(four.targetMicrosPerEntry).toBeCloseTo(160);
  });
});
