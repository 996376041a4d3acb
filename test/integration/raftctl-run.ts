// raftctl as a real child process (adapters/raftctl/main.ts), with the cluster's token files and
// nothing else from the test's environment but PATH.
import { spawn } from 'node:child_process';
import { entryCommand, type LocalCluster } from './cluster.js';

export interface RaftctlRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runRaftctl(cluster: LocalCluster, args: string[], env: Record<string, string> = {}): Promise<RaftctlRun> {
  const secrets = cluster.secrets!;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...entryCommand('adapters/raftctl/main.ts'), ...args], {
      env: { PATH: process.env.PATH ?? '', RAFTD_API_TOKEN_FILE: secrets.paths.apiToken, RAFTD_ADMIN_TOKEN_FILE: secrets.paths.adminToken, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
