// `billstream replay <exceptionId>`: asks the running pipeline's ops server to
// re-evaluate an exception against today's reference data.
export async function runReplay(args: string[]): Promise<number> {
  const id = args[0];
  if (!id) {
    console.error('usage: billstream replay <exceptionId>');
    return 2;
  }
  const base = process.env.BILLSTREAM_URL ?? `http://127.0.0.1:${process.env.HTTP_PORT ?? '8080'}`;
  // The ops server asks for OPS_TOKEN on its actions when one is set.
  const token = process.env.OPS_TOKEN ? { authorization: `Bearer ${process.env.OPS_TOKEN}` } : {};
  const response = await fetch(`${base}/v1/exceptions/${encodeURIComponent(id)}/replay`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...token }, body: JSON.stringify({ by: process.env.USER ?? 'cli' }),
  });
  const body = await response.text();
  console.log(body);
  return response.ok ? 0 : 1;
}
