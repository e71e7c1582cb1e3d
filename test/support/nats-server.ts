// A private nats-server per test suite: a free port on 127.0.0.1 and a temporary
// JetStream store, removed on dispose. Streams in one account may not share
// subjects, so suites never share the machine's broker (nats.js tests itself the same way).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';

export interface TestNatsServer extends AsyncDisposable {
  url: string;
  port: number;
  storeDir: string;
  pid: number;
  /** SIGKILL the server, as a crash would; the store directory stays. */
  kill(): Promise<void>;
  /** Start it again on the same port and store. */
  restart(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function launch(port: number, storeDir: string): ChildProcess {
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.resume();
  return child;
}

export async function startNatsServer(): Promise<TestNatsServer> {
  const port = await freePort();
  const storeDir = await mkdtemp(join(tmpdir(), 'billstream-nats-'));
  let child = launch(port, storeDir);
  await waitForPort(port, 10_000);

  const stop = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  };

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() { return child.pid ?? -1; },
    kill: () => stop('SIGKILL'),
    async restart() {
      await stop('SIGTERM');
      child = launch(port, storeDir);
      await waitForPort(port, 10_000);
    },
    async [Symbol.asyncDispose]() {
      await stop('SIGTERM');
      await rm(storeDir, { recursive: true, force: true });
    },
  };
}

export interface ConnectedNats extends AsyncDisposable {
  nats: TestNatsServer;
  nc: NatsConnection;
}

/** A private nats-server and a connection to it, prepared by `prepare` (a stream added, say); both gone on dispose. */
export async function connectedNatsServer(prepare?: (nc: NatsConnection) => Promise<unknown>): Promise<ConnectedNats> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  await prepare?.(nc);
  return {
    nats, nc,
    async [Symbol.asyncDispose]() {
      if (!nc.isClosed()) await nc.close();
      await nats[Symbol.asyncDispose]();
    },
  };
}

/**
 * A consumer of a durable that fetched `take` messages, acked those whose text
 * is in `ack`, and died holding the rest (its connection closed, nothing else
 * settled), as an instance killed mid-stream leaves them. Returns how many it took.
 */
export async function takeAndDie(url: string, stream: string, durable: string, take: number, ack: ReadonlySet<string> = new Set()): Promise<number> {
  const dead = await connect({ servers: url });
  try {
    const batch = await (await jetstream(dead).consumers.get(stream, durable)).fetch({ max_messages: take, expires: 2_000 });
    let taken = 0;
    for await (const msg of batch) {
      taken++;
      if (ack.has(msg.string())) msg.ack();
    }
    await dead.flush();
    return taken;
  } finally {
    await dead.close();
  }
}

export interface PrivateNats extends AsyncDisposable {
  nc: NatsConnection;
  /** A temporary directory for the test's files, removed with the server. */
  dir: string;
}

/** A private nats-server, a connection to it and a scratch directory, all gone on dispose. */
export async function connectToPrivateNats(dirPrefix: string): Promise<PrivateNats> {
  const connected = await connectedNatsServer();
  const dir = await mkdtemp(join(tmpdir(), dirPrefix));
  return {
    nc: connected.nc, dir,
    async [Symbol.asyncDispose]() {
      await connected[Symbol.asyncDispose]();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
