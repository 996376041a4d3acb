// Names both ends of the state-machine API v1 use (docs/state-machine-api.md): raftd calls them
// (daemon/statemachine/app-client.ts), the SDK serves them (adapters/sdk/server.ts), the conformance
// kit checks them. The binary UpdateEntries body is in entries-codec.ts, the signature in app-auth.ts.

/** Every call is POST <app URL><this>/<Call>; a v2 would get a new path. */
export const STATE_MACHINE_API_PATH = '/raft/v1';

export const STATE_MACHINE_CALLS = ['LastLogIndex', 'UpdateEntries', 'Read', 'PrepareSnapshot', 'SaveSnapshot', 'RecoverFromSnapshot', 'Sync', 'DeleteGroup'] as const;
export type StateMachineCall = (typeof STATE_MACHINE_CALLS)[number];

export function isStateMachineCall(name: string): name is StateMachineCall {
  return (STATE_MACHINE_CALLS as readonly string[]).includes(name);
}
