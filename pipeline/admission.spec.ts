import { describe, expect, it } from 'vitest';
import { Admission } from './admission.ts';

const settled = async (promise: Promise<unknown>) => {
  let done = false;
  void promise.then(() => { done = true; });
  await new Promise((resolve) => setImmediate(resolve));
  return done;
};

describe('Admission', () => {
  it('lets a writer in at once while there is room, and holds it otherwise', async () => {
    let held = 0;
    const admission = new Admission(() => held <= 2);
    expect(await settled(admission.wait())).toBe(true);
    held = 3;
    expect(await settled(admission.wait())).toBe(false);
  });

  it('lets every waiting writer go on the first recheck that finds room, and none before', async () => {
    let held = 5;
    const admission = new Admission(() => held <= 2);
    const writers = [admission.wait(), admission.wait()];
    held = 3;
    admission.recheck();
    expect(await settled(Promise.any(writers))).toBe(false);
    held = 2;
    admission.recheck();
    expect(await settled(Promise.all(writers))).toBe(true);
  });
});
