/**
 * What the component tests of the Kata guest agent share: building the agent (and the native
 * helper it runs containers with), connecting to an agent they spawned on the host, and
 * stopping it afterwards.
 */
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { AgentClient } from '../../src/backends/kata/agent-client.js';
import { repoRoot } from './native-fixtures.js';

/** the native helper and dist/kata/, from the current sources */
export async function buildAgent(): Promise<void> {
  const { buildNative } = (await import(path.join(repoRoot, 'scripts/build-native.mjs'))) as { buildNative: (root: string) => string };
  buildNative(repoRoot);
  const { buildKataAgent } = (await import(path.join(repoRoot, 'scripts/build-kata-agent.mjs'))) as { buildKataAgent: (root: string) => Promise<string[]> };
  await buildKataAgent(repoRoot);
}

/**
 * Retried until the agent answers Check (its socket file appears at bind, before it listens),
 * within a deadline long enough for a loaded CI machine.
 */
export function connectToSpawnedAgent(socket: string): Promise<AgentClient> {
  return AgentClient.connectWhenReady({ unix: socket }, { timeoutMs: 30_000, retryIntervalMs: 50, defaultTimeoutMs: 30_000 });
}

/** closes the client and SIGKILLs an agent still running, waiting for its exit */
export async function stopAgent(client: AgentClient | undefined, agent: ChildProcess | undefined, exited: Promise<unknown> | undefined): Promise<void> {
  await client?.close().catch(() => undefined);
  if (agent && agent.exitCode === null && agent.signalCode === null) {
    agent.kill('SIGKILL');
    await exited;
  }
}
