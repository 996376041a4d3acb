// The consistent-hash ring over RaftHouse's groups 1..G: every group owns `vnodes` points on a 64-bit
// ring (xxhash64 of "g<group>#<replica>"); a key belongs to the first point at or after its own
// xxhash64. Virtual nodes keep the shares even (a few percent apart at 64+ points per group), and
// adding a group moves only the keys that land on its new points.
//
// The same ring must be built identically on every node: it depends only on (groups, vnodes, seed).

import xxhash from 'xxhash-wasm';

type Hasher = Awaited<ReturnType<typeof xxhash>>;

let hasherPromise: Promise<Hasher> | undefined;

/** xxhash-wasm needs an async instantiation once per process. */
export function loadHasher(): Promise<Hasher> {
  hasherPromise ??= xxhash();
  return hasherPromise;
}

export class RouterError extends Error {
  constructor(readonly code: 'ROUTER_BAD_CONFIG' | 'ROUTER_NO_SHARD_KEY' | 'ROUTER_BAD_ROW', message: string) {
    super(message);
    this.name = 'RouterError';
  }
}

export interface RingOptions {
  /** Groups are 1..groups (group 0 is raftd's meta group, never user data). */
  groups: number;
  /** Points per group (default 128). */
  vnodes?: number;
}

export class HashRing {
  readonly groups: number;
  readonly vnodes: number;
  /** Sorted point hashes and, at the same position, the group owning the point. */
  private readonly points: BigUint64Array;
  private readonly owners: Uint32Array;

  private constructor(private readonly hasher: Hasher, groups: number, vnodes: number) {
    this.groups = groups;
    this.vnodes = vnodes;
    const pts: Array<[bigint, number]> = [];
    for (let g = 1; g <= groups; g++) {
      for (let v = 0; v < vnodes; v++) pts.push([hasher.h64(`g${g}#${v}`), g]);
    }
    // Ties (astronomically unlikely) are broken by group so every node builds the same ring.
    pts.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
    this.points = new BigUint64Array(pts.map((p) => p[0]));
    this.owners = new Uint32Array(pts.map((p) => p[1]));
  }

  static async create(opts: RingOptions): Promise<HashRing> {
    const vnodes = opts.vnodes ?? 128;
    if (!Number.isSafeInteger(opts.groups) || opts.groups < 1) throw new RouterError('ROUTER_BAD_CONFIG', `groups must be a positive integer, got ${opts.groups}`);
    if (!Number.isSafeInteger(vnodes) || vnodes < 1) throw new RouterError('ROUTER_BAD_CONFIG', `vnodes must be a positive integer, got ${vnodes}`);
    return new HashRing(await loadHasher(), opts.groups, vnodes);
  }

  /** 64-bit xxhash of a string key (UTF-8). */
  hash(key: string): bigint {
    return this.hasher.h64(key);
  }

  /** The group owning a hash: the first ring point at or after it (wrapping around). */
  groupOfHash(h: bigint): number {
    const pts = this.points;
    let lo = 0;
    let hi = pts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === pts.length ? 0 : lo]!;
  }

  groupOf(key: string): number {
    return this.groupOfHash(this.hash(key));
  }

  /**
   * The home group of a user table: an unsharded table lives there whole; a sharded table has its
   * definition in every group, and its home group is where the gateway looks first.
   * Key: "<database>.<table>" (the user's names, unquoted).
   */
  homeGroup(database: string, table: string): number {
    return this.groupOf(`${database}.${table}`);
  }
}
