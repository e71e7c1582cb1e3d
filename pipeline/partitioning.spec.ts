import { describe, expect, it } from 'vitest';
import { laneOfProject, partitionOf, planLeases } from './partitioning.ts';

describe('partitionOf', () => {
  it('is stable and within range', () => {
    expect(partitionOf('p-1', 16)).toBe(partitionOf('p-1', 16));
    for (const id of ['p-1', 'prj-0001', 'x', 'A_long-project-id-0123456789']) {
      const p = partitionOf(id, 16);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(16);
    }
  });

  it('spreads many projects over every partition', () => {
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[partitionOf(`prj-${i}`, 8)]! += 1;
    for (const c of counts) expect(c).toBeGreaterThan(700);
  });

  it('is FNV-1a of the UTF-8 bytes, so partitions never move between versions', () => {
    // Published FNV-1a 32-bit values.
    expect(partitionOf('', 2 ** 32)).toBe(0x811c9dc5);
    expect(partitionOf('a', 2 ** 32)).toBe(0xe40c292c);
    expect(partitionOf('foobar', 2 ** 32)).toBe(0xbf9cf968);
    const byBytes = (id: string) => {
      let hash = 0x811c9dc5;
      for (const byte of new TextEncoder().encode(id)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
      return hash;
    };
    for (const id of ['prj-0001', 'Zürich-1', 'プロジェクト', 'a\u{1F600}b']) expect(partitionOf(id, 2 ** 32)).toBe(byBytes(id));
  });
});

describe('laneOfProject', () => {
  it('is stable, within range and spreads projects over every lane', () => {
    const counts = new Array<number>(3).fill(0);
    for (let i = 0; i < 6000; i++) {
      const lane = laneOfProject(`prj-${i}`, 3);
      expect(lane).toBe(laneOfProject(`prj-${i}`, 3));
      counts[lane]! += 1;
    }
    for (const c of counts) expect(c).toBeGreaterThan(1700);
    expect(laneOfProject('prj-1', 1)).toBe(0);
  });

  it('spreads ids that differ only in their last character', () => {
    const lanes = new Set(Array.from({ length: 10 }, (_, i) => laneOfProject(`p-${i}`, 2)));
    expect(lanes).toEqual(new Set([0, 1]));
  });

  it("spreads one instance's partitions over both lanes when the lane count divides the partition count", () => {
    // An instance that owns the even partitions of 16: a remainder would put all its projects in lane 0 of 2.
    const counts = [0, 0];
    for (let i = 0; i < 8000; i++) {
      const id = `prj-${i}`;
      if (partitionOf(id, 16) % 2 === 0) counts[laneOfProject(id, 2)]! += 1;
    }
    expect(Math.min(...counts)).toBeGreaterThan(1600);
  });
});

describe('planLeases', () => {
  const owners = (entries: [number, string][]) => new Map(entries);

  it.each([
    {
      name: 'a lone instance takes every partition',
      view: { self: 'a', members: ['a'], partitions: 4, owners: owners([]) },
      plan: { acquire: [0, 1, 2, 3], release: [] },
    },
    {
      name: 'two fresh instances take their spread first',
      view: { self: 'b', members: ['a', 'b'], partitions: 4, owners: owners([]) },
      plan: { acquire: [1, 3], release: [] },
    },
    {
      name: 'an instance holding everything gives back the newcomer\'s spread when a second joins',
      view: { self: 'a', members: ['a', 'b'], partitions: 4, owners: owners([[0, 'a'], [1, 'a'], [2, 'a'], [3, 'a']]) },
      plan: { acquire: [], release: [3, 1] },
    },
    {
      name: 'the newcomer waits for released partitions and takes what is free',
      view: { self: 'b', members: ['a', 'b'], partitions: 4, owners: owners([[0, 'a'], [2, 'a'], [3, 'a']]) },
      plan: { acquire: [1], release: [] },
    },
    {
      name: 'a dead member\'s expired partitions are taken over by the survivors',
      view: { self: 'a', members: ['a', 'c'], partitions: 6, owners: owners([[0, 'a'], [3, 'a'], [2, 'c'], [5, 'c']]) },
      plan: { acquire: [4], release: [] },
    },
    {
      name: 'a partition still leased by a dead member is not taken before its lease expires',
      view: { self: 'a', members: ['a'], partitions: 2, owners: owners([[0, 'a'], [1, 'dead']]) },
      plan: { acquire: [], release: [] },
    },
  ])('$name', ({ view, plan }) => {
    expect(planLeases(view)).toEqual(plan);
  });
});
