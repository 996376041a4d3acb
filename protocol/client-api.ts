// Names both ends of raftd's client API use (docs/operations.md; daemon/api/server.ts answers,
// adapters/sdk/client.ts asks): the headers beside the JSON bodies, and the range of a group id.
// The error codes and the error body are in errors.ts, propose-batch's binary framing in batch-codec.ts.

/** A client asks raftd not to forward to the leader: a follower answers NOT_LEADER with the leader's address. */
export const NO_FORWARD_HEADER = 'x-raftd-no-forward';
/** On a request a follower forwarded: the leader never forwards it again. */
export const FORWARDED_HEADER = 'x-raftd-forwarded';
/** On an answer a follower forwarded: the leader's HTTP address, so a client may go there directly next time. */
export const LEADER_HEADER = 'x-raftd-leader';

/** Group 0 is raftd's own meta group; applications see 1..MAX_GROUP. */
export const MIN_GROUP = 1;
/** The last group id: 2^32 - 1 is storage's end-of-range key (daemon/storage/codec.ts). */
export const MAX_GROUP = 4294967294;
