// One app secret per test process, for tests that run raftd's AppClient against an SDK server in
// process: both sides are given it, as raftd and its application are in production.
import { generateSecret } from '../../protocol/secrets.js';

export const TEST_APP_SECRET = generateSecret();
