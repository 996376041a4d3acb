export { HashRing, RouterError, loadHasher } from './ring.js';
export type { RingOptions } from './ring.js';
export { splitJsonEachRow, shardText } from './split.js';
export type { SplitResult } from './split.js';
