/**
 * Connects a test to a guest agent it just spawned on the host: retried until the agent
 * answers Check (its socket file appears at bind, before it listens), within a deadline long
 * enough for a loaded CI machine.
 */
import { AgentClient } from '../../src/backends/kata/agent-client.js';

export function connectToSpawnedAgent(socket: string): Promise<AgentClient> {
  return AgentClient.connectWhenReady({ unix: socket }, { timeoutMs: 30_000, retryIntervalMs: 50, defaultTimeoutMs: 30_000 });
}
