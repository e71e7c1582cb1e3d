import { describe, expect, it } from 'vitest';
import { ConfigError } from '../config.ts';
import { startChild, startNodeEnv, startNodeFlags } from './start.ts';

describe('startNodeFlags', () => {
  it('gives billstream start its heap budget, a young generation of a tenth of it (at most 32 MiB) and an old generation that doubles between collections', () => {
    expect(startNodeFlags({})).toEqual(['--max-old-space-size=320', '--max-semi-space-size=32', '--heap-growing-percent=100']);
    expect(startNodeFlags({ BILLSTREAM_HEAP_MIB: '128' })).toEqual(['--max-old-space-size=128', '--max-semi-space-size=12', '--heap-growing-percent=100']);
    expect(startNodeFlags({ BILLSTREAM_HEAP_MIB: '2048' })).toEqual(['--max-old-space-size=2048', '--max-semi-space-size=32', '--heap-growing-percent=100']);
  });

  it('leaves V8 its own limits with 0', () => {
    expect(startNodeFlags({ BILLSTREAM_HEAP_MIB: '0' })).toEqual([]);
  });

  it('refuses a budget too small to run in, naming the variable', () => {
    expect(() => startNodeFlags({ BILLSTREAM_HEAP_MIB: '32' })).toThrow(ConfigError);
    expect(() => startNodeFlags({ BILLSTREAM_HEAP_MIB: 'lots' })).toThrow(/BILLSTREAM_HEAP_MIB/);
  });
});

describe('startNodeEnv', () => {
  it('gives billstream start two malloc arenas, keeping a MALLOC_ARENA_MAX already set', () => {
    expect(startNodeEnv({})).toEqual({ MALLOC_ARENA_MAX: '2' });
    expect(startNodeEnv({ MALLOC_ARENA_MAX: '4' })).toEqual({ MALLOC_ARENA_MAX: '4' });
  });
});

describe('startChild', () => {
  it('starts the same command behind the flags, with two malloc arenas and the supervisor\'s pid', () => {
    const started = startChild({
      flags: ['--max-old-space-size=320'], execArgv: ['--enable-source-maps'], argv: ['/usr/bin/node', 'ops/cli.ts', 'start'],
      env: { NATS_URL: 'nats://127.0.0.1:4222' }, pid: 4321,
    });
    expect(started.args).toEqual(['--max-old-space-size=320', '--enable-source-maps', 'ops/cli.ts', 'start']);
    expect(started.env).toEqual({ NATS_URL: 'nats://127.0.0.1:4222', MALLOC_ARENA_MAX: '2', BILLSTREAM_SUPERVISOR_PID: '4321' });
  });
});
