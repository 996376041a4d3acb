// The adapter SDK: implement StateMachine, call serveStateMachine; talk to raftd with RaftdClient.
export * from './types.js';
export { serveStateMachine, stateMachineHandler, type AuthOptions, type ServeOptions, type ServedStateMachine } from './server.js';
export { RaftdClient, RaftdError, type Consistency, type RaftdClientOptions, type ProposeResult, type BatchItemResult, type LeaderHint } from './client.js';
