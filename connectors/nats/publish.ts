// Publishing to JetStream with a message id (the broker's duplicate window is
// the first filter against republished outbox rows) and the W3C trace context.
import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { MsgHdrsImpl, createInbox, headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { TRACEPARENT_HEADER, TRACESTATE_HEADER, extractTraceContext, injectTraceContext } from '../../pipeline/model/trace-context.ts';

export interface OutgoingMessage {
  subject: string;
  msgId: string;
  payload: unknown;
  headers?: Record<string, string> | null;
}

const encoder = new TextEncoder();
const NATS_MSG_ID = 'Nats-Msg-Id';
const decoder = new TextDecoder();

/**
 * The headers a message goes out with besides its Nats-Msg-Id: the stored ones,
 * then its W3C trace context. The trace context goes through the one
 * propagation helper, so a malformed stored traceparent is dropped rather than
 * passed on to consumers.
 */
function outgoingHeaders(message: OutgoingMessage): Record<string, string> {
  const stored = message.headers;
  if (!stored) return {};
  const headers: Record<string, string> = {};
  for (const key in stored) {
    if (key !== TRACEPARENT_HEADER && key !== TRACESTATE_HEADER && key !== NATS_MSG_ID) headers[key] = stored[key] as string;
  }
  if (stored[TRACEPARENT_HEADER] !== undefined) injectTraceContext(headers, extractTraceContext(stored));
  return headers;
}

function messageHeaders(message: OutgoingMessage): MsgHdrs {
  const h = natsHeaders();
  const headers = outgoingHeaders(message);
  for (const key in headers) h.set(key, headers[key] as string);
  return h;
}

/**
 * A message's header block as NATS sends it (`NATS/1.0`, a `Name: value` line
 * per header, a blank line), its Nats-Msg-Id last, built as one string. What
 * nats.js's MsgHdrs does per header (a key lookup that lists every key, twice,
 * per `set`, an array per value, a canonical copy of the name, then the
 * encoding of it all) was about a tenth of everything billstream allocated
 * during a week close (a sampled heap profile). Names and values are held to
 * nats.js's rules: a name of visible ASCII without ':', a value without CR or
 * LF, trimmed.
 */
export function headerBlock(message: OutgoingMessage): string {
  let block = 'NATS/1.0';
  const headers = outgoingHeaders(message);
  for (const key in headers) block += headerLine(key, headers[key] as string);
  return `${block}${headerLine(NATS_MSG_ID, message.msgId)}\r\n\r\n`;
}

function headerLine(name: string, value: string): string {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 58 || c < 33 || c > 126) throw new TypeError(`header name '${name}': '${name[i]}' is not a valid character in a header name`);
  }
  if (/[\r\n]/.test(value)) throw new TypeError(`header ${name}: a value cannot contain CR or LF`);
  return `\r\n${name}: ${value.trim()}`;
}

/**
 * Headers whose wire form is already built: all `nc.publish` asks of its
 * headers is `encode()`. Only for publishing; reading them back answers nothing.
 */
class EncodedHeaders extends MsgHdrsImpl {
  readonly #bytes: Uint8Array;
  constructor(block: string) {
    super();
    this.#bytes = encoder.encode(block);
  }
  override encode(): Uint8Array {
    return this.#bytes;
  }
}

function payloadOf(message: OutgoingMessage): Uint8Array {
  return typeof message.payload === 'string' ? encoder.encode(message.payload) : encoder.encode(JSON.stringify(message.payload));
}

export async function publishMessage(js: JetStreamClient, message: OutgoingMessage): Promise<PubAck> {
  return js.publish(message.subject, payloadOf(message), { msgID: message.msgId, headers: messageHeaders(message) });
}

export class JetStreamPublishError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JetStreamPublishError';
  }
}

/**
 * The PubAck in the answer to a publish of `subject` sent with a reply subject
 * of the caller's own, or a JetStreamPublishError that names the subject: no
 * stream takes it (the server answers 503 with no body), the server refused it,
 * or the answer cannot be read.
 */
export function pubAckOf(answer: Msg, subject: string): PubAck {
  if (answer.headers?.code === 503) throw new JetStreamPublishError(`no stream stores ${subject}`);
  let ack: PubAck & { error?: { code: number; description: string } };
  try {
    ack = JSON.parse(decoder.decode(answer.data)) as typeof ack;
  } catch (cause) {
    throw new JetStreamPublishError(`an unreadable answer to the publish of ${subject}`, { cause });
  }
  if (ack.error) throw new JetStreamPublishError(`${subject} was refused: ${ack.error.description} (${ack.error.code})`);
  return { ...ack, duplicate: ack.duplicate ?? false };
}

/**
 * Publishes many messages to JetStream and resolves with every message's PubAck,
 * in order; rejects if any is refused or not acknowledged within `timeoutMs`.
 *
 * What `js.publish` does per message (a request: its own reply subscription
 * entry, timer, promise and, on every answer, an Error built to cancel it) is
 * done here once per batch: one reply subscription, one timer, each message
 * published with a reply subject of its own index. The server's answers are
 * the same PubAcks, duplicates (Nats-Msg-Id seen in the window) included.
 */
export async function publishAll(nc: NatsConnection, messages: readonly OutgoingMessage[], options: { timeoutMs?: number } = {}): Promise<PubAck[]> {
  if (messages.length === 0) return [];
  const inbox = createInbox();
  const acks: (PubAck | undefined)[] = new Array<PubAck | undefined>(messages.length);
  let remaining = messages.length;
  return new Promise<PubAck[]>((resolve, reject) => {
    let done = false;
    function finish(err?: Error): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sub.unsubscribe();
      if (err) reject(err);
      else resolve(acks as PubAck[]);
    }
    const sub = nc.subscribe(`${inbox}.*`, {
      callback: (err, msg) => {
        if (err) { finish(err); return; }
        const index = Number(msg.subject.slice(inbox.length + 1));
        const message = messages[index];
        if (!message || acks[index] !== undefined) return;
        try {
          acks[index] = pubAckOf(msg, message.subject);
        } catch (err) {
          finish(err as Error);
          return;
        }
        if (--remaining === 0) finish();
      },
    });
    const timer = setTimeout(() => finish(new JetStreamPublishError(`${remaining} of ${messages.length} messages were not acknowledged within ${options.timeoutMs ?? 10_000} ms`)), options.timeoutMs ?? 10_000);
    try {
      messages.forEach((message, index) => {
        nc.publish(message.subject, payloadOf(message), { reply: `${inbox}.${index}`, headers: new EncodedHeaders(headerBlock(message)) });
      });
    } catch (err) {
      finish(err instanceof Error ? err : new JetStreamPublishError(String(err)));
    }
  });
}
