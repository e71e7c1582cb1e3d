// Partitioning projects across instances. Each project hashes into one of a
// fixed number of partitions; each partition has exactly one owner at a time
// (a lease), so each project's billing stays strictly serial on one instance
// while several instances share the work. The functions here are pure: which
// partition a project is in, and what an instance should acquire or release
// given who is alive and who owns what.

const utf8 = new TextEncoder();

/** FNV-1a over the id's UTF-8 bytes: stable across processes, versions and machines. */
function fnv1a(id: string): number {
  let hash = 0x811c9dc5;
  // Ids are ASCII (records.ts ID_PATTERN): their chars are their UTF-8 bytes,
  // and this runs once per entry, so no byte array is made for them.
  let ascii = true;
  for (let i = 0; i < id.length; i++) {
    const code = id.charCodeAt(i);
    if (code >= 0x80) { ascii = false; break; }
    hash = Math.imul(hash ^ code, 0x01000193) >>> 0;
  }
  if (ascii) return hash;
  hash = 0x811c9dc5;
  for (const byte of utf8.encode(id)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0;
  return hash;
}

/** The partition of a project: FNV-1a of its id, modulo the partition count. */
export function partitionOf(projectId: string, partitions: number): number {
  return fnv1a(projectId) % partitions;
}

/**
 * The lane of a project within its region (billing-pipeline.ts), in `[0, lanes)`.
 *
 * Taken from the high bits of the hash, mixed first, not from its remainder like
 * the partition: an instance owns a set of partitions, and with remainders a lane
 * count that divides the partition count would put all of an instance's projects
 * in the same lanes (owning partitions 0, 2, 4…, every project in lane 0 of 2).
 * The mixing (murmur3's finalizer) is needed because FNV-1a's high bits barely
 * move with an id's last character: p-0 to p-9 all had the same lane unmixed.
 */
export function laneOfProject(projectId: string, lanes: number): number {
  let hash = fnv1a(projectId);
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  hash = (hash ^ (hash >>> 16)) >>> 0;
  return Math.floor((hash / 0x1_0000_0000) * lanes);
}

export interface LeaseView {
  /** This instance's id. */
  self: string;
  /** Live instances (their membership heartbeats), this one included. */
  members: readonly string[];
  partitions: number;
  /** Current owner of each leased partition; absent = free. */
  owners: ReadonlyMap<number, string>;
}

export interface LeasePlan {
  acquire: number[];
  release: number[];
}

/**
 * What this instance should do to reach a fair share: at most ceil(P / members)
 * partitions each. Free partitions are taken preferring the ones the
 * deterministic spread (partition i → member i mod m, members sorted) gives this
 * instance, so instances starting together do not all race for the same ones;
 * surplus partitions are released, those another member is meant to hold first.
 * Partitions owned by a member that is no longer alive count as free only once
 * their lease has expired (the lease store drops them), never earlier.
 */
export function planLeases(view: LeaseView): LeasePlan {
  const members = [...new Set(view.members.includes(view.self) ? view.members : [...view.members, view.self])].sort();
  const share = Math.ceil(view.partitions / members.length);
  const preferredOwner = (partition: number) => members[partition % members.length];
  const mine = [...view.owners].filter(([, owner]) => owner === view.self).map(([p]) => p);

  const release: number[] = [];
  if (mine.length > share) {
    // Give back first what the spread assigns to someone else, highest numbers first.
    const ordered = [...mine].sort((a, b) => {
      const aOthers = preferredOwner(a) !== view.self ? 1 : 0;
      const bOthers = preferredOwner(b) !== view.self ? 1 : 0;
      return bOthers - aOthers || b - a;
    });
    release.push(...ordered.slice(0, mine.length - share));
  }

  const acquire: number[] = [];
  const room = share - (mine.length - release.length);
  if (room > 0) {
    const free = Array.from({ length: view.partitions }, (_, p) => p).filter((p) => !view.owners.has(p));
    const preferred = free.filter((p) => preferredOwner(p) === view.self);
    const others = free.filter((p) => preferredOwner(p) !== view.self);
    acquire.push(...[...preferred, ...others].slice(0, room));
  }
  return { acquire, release };
}
