import { describe, expect, it } from 'vitest';
import { postgresClientOf, type PostgresSession } from './cpu-usage.ts';

describe('postgresClientOf', () => {
  const sessions: PostgresSession[] = [
    { pid: 10, database: 'billstream_bench', applicationName: 'billstream', backendType: 'client backend' },
    { pid: 11, database: 'billstream_bench', applicationName: 'billstream-erp-sandbox', backendType: 'client backend' },
    { pid: 12, database: 'billstream_bench', applicationName: 'psql', backendType: 'client backend' },
    { pid: 13, database: 'test', applicationName: 'billstream', backendType: 'client backend' },
    { pid: 14, database: null, applicationName: '', backendType: 'walwriter' },
  ];
  const clientOf = postgresClientOf(sessions, 'billstream_bench', { billstream: 'billstream', 'billstream-erp-sandbox': 'ERP sandbox' });

  it('names a backend of the measured database by its application_name, an unknown one other', () => {
    expect([10, 11, 12].map(clientOf)).toEqual(['billstream', 'ERP sandbox', 'other']);
  });

  it('leaves out a backend of another database, even one of billstream', () => {
    expect(clientOf(13)).toBeNull();
  });

  it('counts background processes and unlisted ones (the postmaster) as the server', () => {
    expect([14, 99].map(clientOf)).toEqual(['server', 'server']);
  });
});
