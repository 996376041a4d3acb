// The node (V8) flags raftd is launched with. They cannot be set from inside the process (V8 sizes
// its heap when the isolate starts; v8.setFlagsFromString('--max-semi-space-size=…') afterwards
// changes nothing), so every launcher passes them on the command line: the `raftd` command's own
// shebang (daemon/main.ts, kept equal to this list by a unit test), `npm start` and the test cluster.
//
// Why a 64 MB semi-space: every entry stays in its group's in-memory log until the next snapshot,
// so ~75% of V8's young generation survives each scavenge (16 MB semi-spaces by default) and is
// copied twice before promotion. A larger nursery scavenges less often and copies less per entry:
// docs/benchmarks.md "raftd's launcher sets --max-semi-space-size=64" (paired runs). The space
// grows only under allocation pressure, so an idle raftd's memory does not change.
export const RAFTD_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=64'];
