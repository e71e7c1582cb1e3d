import { describe, expect, it } from 'vitest';
import {
  fingerprint,
  hoursFromDecimal,
  hoursFromSeconds,
  localDate,
  revisionFromInstant,
  secondsFromClock,
  secondsFromIsoDuration,
  staticIdMapping,
  utcInstant,
} from './mapping.ts';

describe('source mapping conversions', () => {
  it.each([
    [5400, '1.50'],
    [3600, '1.00'],
    [18, '0.01'], // 0.005 h: half away from zero
    [17, '0.00'],
    [27_000, '7.50'],
    [5430, '1.51'], // 1.5083…
    [86_400, '24.00'],
  ])('%i seconds are %s hours', (seconds, hours) => {
    expect(hoursFromSeconds(seconds)).toBe(hours);
  });

  it.each([
    [2.11, '2.11'],
    [1.005, '1.01'],
    [1.004999, '1.00'],
    [2.1, '2.10'],
    [0.125, '0.13'],
    ['7.5', '7.50'],
    [3, '3.00'],
  ])('%s decimal hours are %s', (value, hours) => {
    expect(hoursFromDecimal(value)).toBe(hours);
  });

  it('refuses what is no plain decimal', () => {
    expect(hoursFromDecimal(-1)).toBeNull();
    expect(hoursFromDecimal(1e-7)).toBeNull();
    expect(hoursFromDecimal('1,5')).toBeNull();
    expect(hoursFromDecimal(Number.NaN)).toBeNull();
  });

  it.each([
    ['PT1H30M', 5400],
    ['PT8H', 28_800],
    ['PT45M30S', 2730],
    ['PT0S', 0],
    ['P1DT2H', 93_600],
  ])('ISO duration %s is %i seconds', (text, seconds) => {
    expect(secondsFromIsoDuration(text)).toBe(seconds);
  });

  it.each(['', 'P', 'PT', '1H30M', 'PT1.5H', 'P1W'])('%j is no duration', (text) => {
    expect(secondsFromIsoDuration(text)).toBeNull();
  });

  it('reads HH:MM:SS, hours past 24 included', () => {
    expect(secondsFromClock('01:30:00')).toBe(5400);
    expect(secondsFromClock('25:00:01')).toBe(90_001);
    expect(secondsFromClock('1:75:00')).toBeNull();
  });

  it('derives revisions that grow with the update time and start at 1', () => {
    expect(revisionFromInstant('2000-01-01T00:00:01Z')).toBe(1);
    expect(revisionFromInstant('1999-12-31T00:00:00Z')).toBe(1);
    const earlier = revisionFromInstant('2026-03-03T16:47:14Z') as number;
    const later = revisionFromInstant('2026-03-03T16:47:15+00:00') as number;
    expect(later).toBe(earlier + 1);
    // PostgreSQL int holds them for decades yet.
    expect(revisionFromInstant('2060-01-01T00:00:00Z')).toBeLessThan(2 ** 31);
    expect(revisionFromInstant('not a time')).toBeNull();
  });

  it('normalises instants to UTC, offsets without a colon included', () => {
    expect(utcInstant('2026-03-02T09:00:00+0100')).toBe('2026-03-02T08:00:00Z');
    expect(utcInstant('2026-03-03T01:02:03+00:00')).toBe('2026-03-03T01:02:03Z');
    expect(utcInstant('2026-03-03T01:02:03.250Z')).toBe('2026-03-03T01:02:03.250Z');
  });

  it('dates work in the time zone of the person', () => {
    expect(localDate('2026-03-02T23:30:00Z', 'Europe/Berlin')).toBe('2026-03-03');
    expect(localDate('2026-03-02T23:30:00Z', 'UTC')).toBe('2026-03-02');
    expect(localDate('2026-03-03T03:00:00Z', 'America/New_York')).toBe('2026-03-02');
  });

  it('fingerprints content, not key order', () => {
    expect(fingerprint({ a: 1, b: { c: 2, d: [1, 2] } })).toBe(fingerprint({ b: { d: [1, 2], c: 2 }, a: 1 }));
    expect(fingerprint({ a: 1 })).not.toBe(fingerprint({ a: 2 }));
  });

  it('static id mappings name the path and the value that failed', () => {
    const ids = staticIdMapping({ paths: { projectId: 'project.id' }, tables: { projectId: { 1: 'p-1' } } });
    expect(ids.resolve('projectId', { project: { id: 1 } })).toEqual({ value: 'p-1' });
    expect(ids.resolve('projectId', { project: { id: 2 } })).toEqual({ error: 'project.id 2 is not in the lookup table' });
    expect(ids.resolve('projectId', { project: null })).toEqual({ error: 'project.id is null in the source entry' });
    expect(ids.resolve('taskId', {})).toEqual({});
  });
});
