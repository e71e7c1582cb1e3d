// A small OTLP/HTTP trace receiver: `POST /v1/traces` with an
// ExportTraceServiceRequest in protobuf, answered 200 like a collector. The
// bench exports to it so that tracing's cost includes real serialisation and
// HTTP (it only counts spans); the tracing tests decode every span to check
// what billstream exports. The protobuf reading covers the OTLP trace messages
// and nothing else (the exporter's own package only encodes).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';

export interface OtlpAttributes { [key: string]: unknown }

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  /** Empty for a root span. */
  parentSpanId: string;
  name: string;
  /** 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: OtlpAttributes;
  events: { name: string; timeUnixNano: bigint; attributes: OtlpAttributes }[];
  links: { traceId: string; spanId: string; attributes: OtlpAttributes }[];
  /** code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  resource: OtlpAttributes;
  scope: string;
}

export interface OtlpReceiverOptions {
  /** Keep every decoded span (tests); otherwise spans are only counted. @default false */
  decode?: boolean;
  /** @default 127.0.0.1 */
  host?: string;
  /** @default 0 (a free port) */
  port?: number;
}

export interface OtlpReceiver extends AsyncDisposable {
  /** The base endpoint, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  readonly requests: number;
  readonly bytes: number;
  readonly spanCount: number;
  /** Decoded spans (with `decode: true`). */
  readonly spans: readonly OtlpSpan[];
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Protobuf wire format, as far as OTLP traces need it

class WireReader {
  readonly #buf: Uint8Array;
  #pos: number;
  readonly #end: number;

  constructor(buf: Uint8Array, start = 0, end = buf.length) {
    this.#buf = buf;
    this.#pos = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#pos >= this.#end;
  }

  varint(): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      if (this.#pos >= this.#end) throw new Error('protobuf: truncated varint');
      const byte = this.#buf[this.#pos++] as number;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return result;
      shift += 7n;
    }
  }

  tag(): { field: number; wire: number } {
    const tag = Number(this.varint());
    return { field: tag >>> 3, wire: tag & 7 };
  }

  fixed64(): bigint {
    const view = new DataView(this.#buf.buffer, this.#buf.byteOffset + this.#pos, 8);
    this.#pos += 8;
    return view.getBigUint64(0, true);
  }

  double(): number {
    const view = new DataView(this.#buf.buffer, this.#buf.byteOffset + this.#pos, 8);
    this.#pos += 8;
    return view.getFloat64(0, true);
  }

  /** A length-delimited field as a reader over its bytes. */
  sub(): WireReader {
    const length = Number(this.varint());
    const start = this.#pos;
    this.#pos += length;
    if (this.#pos > this.#end) throw new Error('protobuf: truncated field');
    return new WireReader(this.#buf, start, start + length);
  }

  bytes(): Uint8Array {
    const length = Number(this.varint());
    const out = this.#buf.subarray(this.#pos, this.#pos + length);
    this.#pos += length;
    return out;
  }

  string(): string {
    return new TextDecoder().decode(this.bytes());
  }

  skip(wire: number): void {
    switch (wire) {
      case 0: this.varint(); break;
      case 1: this.#pos += 8; break;
      case 2: { const length = Number(this.varint()); this.#pos += length; break; }
      case 5: this.#pos += 4; break;
      default: throw new Error(`protobuf: unsupported wire type ${wire}`);
    }
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

function anyValue(r: WireReader): unknown {
  let value: unknown = null;
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1 && wire === 2) value = r.string();
    else if (field === 2 && wire === 0) value = r.varint() !== 0n;
    else if (field === 3 && wire === 0) value = Number(BigInt.asIntN(64, r.varint()));
    else if (field === 4 && wire === 1) value = r.double();
    else if (field === 5 && wire === 2) {
      const values: unknown[] = [];
      const array = r.sub();
      while (!array.done) { const t = array.tag(); if (t.field === 1 && t.wire === 2) values.push(anyValue(array.sub())); else array.skip(t.wire); }
      value = values;
    } else if (field === 6 && wire === 2) {
      const list = r.sub();
      const kv: OtlpAttributes = {};
      while (!list.done) { const t = list.tag(); if (t.field === 1 && t.wire === 2) keyValue(list.sub(), kv); else list.skip(t.wire); }
      value = kv;
    } else if (field === 7 && wire === 2) value = hex(r.bytes());
    else r.skip(wire);
  }
  return value;
}

function keyValue(r: WireReader, into: OtlpAttributes): void {
  let key = '';
  let value: unknown = null;
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1 && wire === 2) key = r.string();
    else if (field === 2 && wire === 2) value = anyValue(r.sub());
    else r.skip(wire);
  }
  into[key] = value;
}

function attributesOf(r: WireReader, field: number, wire: number, into: OtlpAttributes, attributeField: number): boolean {
  if (field === attributeField && wire === 2) { keyValue(r.sub(), into); return true; }
  return false;
}

function span(r: WireReader, resource: OtlpAttributes, scope: string): OtlpSpan {
  const out: OtlpSpan = {
    traceId: '', spanId: '', parentSpanId: '', name: '', kind: 0, startTimeUnixNano: 0n, endTimeUnixNano: 0n,
    attributes: {}, events: [], links: [], status: { code: 0, message: '' }, resource, scope,
  };
  while (!r.done) {
    const { field, wire } = r.tag();
    if (field === 1 && wire === 2) out.traceId = hex(r.bytes());
    else if (field === 2 && wire === 2) out.spanId = hex(r.bytes());
    else if (field === 4 && wire === 2) out.parentSpanId = hex(r.bytes());
    else if (field === 5 && wire === 2) out.name = r.string();
    else if (field === 6 && wire === 0) out.kind = Number(r.varint());
    else if (field === 7 && wire === 1) out.startTimeUnixNano = r.fixed64();
    else if (field === 8 && wire === 1) out.endTimeUnixNano = r.fixed64();
    else if (attributesOf(r, field, wire, out.attributes, 9)) continue;
    else if (field === 11 && wire === 2) {
      const e = r.sub();
      const event = { name: '', timeUnixNano: 0n, attributes: {} as OtlpAttributes };
      while (!e.done) {
        const t = e.tag();
        if (t.field === 1 && t.wire === 1) event.timeUnixNano = e.fixed64();
        else if (t.field === 2 && t.wire === 2) event.name = e.string();
        else if (!attributesOf(e, t.field, t.wire, event.attributes, 3)) e.skip(t.wire);
      }
      out.events.push(event);
    } else if (field === 13 && wire === 2) {
      const l = r.sub();
      const link = { traceId: '', spanId: '', attributes: {} as OtlpAttributes };
      while (!l.done) {
        const t = l.tag();
        if (t.field === 1 && t.wire === 2) link.traceId = hex(l.bytes());
        else if (t.field === 2 && t.wire === 2) link.spanId = hex(l.bytes());
        else if (!attributesOf(l, t.field, t.wire, link.attributes, 4)) l.skip(t.wire);
      }
      out.links.push(link);
    } else if (field === 15 && wire === 2) {
      const s = r.sub();
      while (!s.done) {
        const t = s.tag();
        if (t.field === 2 && t.wire === 2) out.status.message = s.string();
        else if (t.field === 3 && t.wire === 0) out.status.code = Number(s.varint());
        else s.skip(t.wire);
      }
    } else r.skip(wire);
  }
  return out;
}

/** Decodes an ExportTraceServiceRequest (protobuf) into its spans. */
export function decodeTraceRequest(body: Uint8Array): OtlpSpan[] {
  const spans: OtlpSpan[] = [];
  const request = new WireReader(body);
  while (!request.done) {
    const { field, wire } = request.tag();
    if (field !== 1 || wire !== 2) { request.skip(wire); continue; }
    const resourceSpans = request.sub();
    const resource: OtlpAttributes = {};
    const scopes: WireReader[] = [];
    while (!resourceSpans.done) {
      const t = resourceSpans.tag();
      if (t.field === 1 && t.wire === 2) {
        const res = resourceSpans.sub();
        while (!res.done) { const a = res.tag(); if (!attributesOf(res, a.field, a.wire, resource, 1)) res.skip(a.wire); }
      } else if (t.field === 2 && t.wire === 2) scopes.push(resourceSpans.sub());
      else resourceSpans.skip(t.wire);
    }
    for (const scopeSpans of scopes) {
      let scope = '';
      const bodies: WireReader[] = [];
      while (!scopeSpans.done) {
        const t = scopeSpans.tag();
        if (t.field === 1 && t.wire === 2) {
          const s = scopeSpans.sub();
          while (!s.done) { const a = s.tag(); if (a.field === 1 && a.wire === 2) scope = s.string(); else s.skip(a.wire); }
        } else if (t.field === 2 && t.wire === 2) bodies.push(scopeSpans.sub());
        else scopeSpans.skip(t.wire);
      }
      for (const b of bodies) spans.push(span(b, resource, scope));
    }
  }
  return spans;
}

/** Counts the spans of an ExportTraceServiceRequest without decoding them. */
export function countSpans(body: Uint8Array): number {
  let count = 0;
  const request = new WireReader(body);
  while (!request.done) {
    const { field, wire } = request.tag();
    if (field !== 1 || wire !== 2) { request.skip(wire); continue; }
    const resourceSpans = request.sub();
    while (!resourceSpans.done) {
      const t = resourceSpans.tag();
      if (t.field !== 2 || t.wire !== 2) { resourceSpans.skip(t.wire); continue; }
      const scopeSpans = resourceSpans.sub();
      while (!scopeSpans.done) {
        const s = scopeSpans.tag();
        if (s.field === 2 && s.wire === 2) count++;
        scopeSpans.skip(s.wire);
      }
    }
  }
  return count;
}

// ---------------------------------------------------------------------------

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startOtlpReceiver(options: OtlpReceiverOptions = {}): Promise<OtlpReceiver> {
  const spans: OtlpSpan[] = [];
  let requests = 0;
  let bytes = 0;
  let spanCount = 0;
  const server: Server = createServer((req, res) => {
    if (req.method !== 'POST' || !req.url?.startsWith('/v1/traces')) {
      res.writeHead(404).end();
      return;
    }
    readBody(req).then((raw) => {
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      requests++;
      bytes += body.length;
      if (options.decode) {
        const decoded = decodeTraceRequest(body);
        spans.push(...decoded);
        spanCount += decoded.length;
      } else {
        spanCount += countSpans(body);
      }
      // An empty ExportTraceServiceResponse: everything accepted.
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    }).catch((err: unknown) => {
      res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err));
    });
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: `http://${host}:${port}`,
    get requests() { return requests; },
    get bytes() { return bytes; },
    get spanCount() { return spanCount; },
    spans,
    close,
    [Symbol.asyncDispose]: close,
  };
}
