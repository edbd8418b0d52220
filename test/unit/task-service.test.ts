/**
 * The Task service edge over a real ttrpc connection: what containerd sees for a request
 * whose payload is not the method's request message.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Code, TtrpcClient, TtrpcServer } from '../../src/ttrpc/index.js';
import { listenPipe } from '../../src/sys/uv-pipe.js';
import { registerTaskService } from '../../src/shim/task-service.js';
import { errorToStatus } from '../../src/shim/status.js';
import type { TaskCore } from '../../src/core/task-core.js';
import { TASK_SERVICE_V2, TASK_SERVICE_V3 } from '../../src/proto/typeurls.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('Task service: undecodable payloads', () => {
  it('answers Internal "ttrpc: error unmarshalling payload", as the runc shim (Go ttrpc) does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'task-svc-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const server = new TtrpcServer({ errorToStatus });
    const calls: string[] = [];
    // any use of the core would be a bug: the payload must be refused before
    const core = new Proxy({}, { get: (_t, p) => (calls.push(String(p)), () => undefined) }) as unknown as TaskCore;
    registerTaskService(server, core, {
      shutdown: () => undefined,
      decodeOptions: () => ({ runc: {} }),
      shimPid: process.pid,
      log: { debug: () => undefined, warn: () => undefined },
    });
    const path = join(dir, 's.sock');
    server.listen(await listenPipe({ path }));
    cleanups.push(() => server.close());
    const client = await TtrpcClient.connect(path, { timeoutMs: 2000 });
    cleanups.push(() => client.close());
    // field 1 (id) claims 5 bytes and carries 1
    const broken = Uint8Array.from([0x0a, 0x05, 0x61]);
    for (const service of [TASK_SERVICE_V2, TASK_SERVICE_V3]) {
      for (const method of ['State', 'Create', 'Exec', 'Kill']) {
        await expect(client.call(service, method, broken)).rejects.toMatchObject({
          code: Code.Internal,
          message: expect.stringMatching(/^ttrpc: error unmarshalling payload: .+/),
        });
      }
    }
    expect(calls).toEqual([]);
  });
});

describe('Task service: Exec', () => {
  it('reads the process spec whatever its type URL says, as the runc shim does', async () => {
    const { ExecProcessRequest } = await import('../../src/proto/gen/containerd/task/v2/shim.js');
    const dir = mkdtempSync(join(tmpdir(), 'task-svc-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const server = new TtrpcServer({ errorToStatus });
    const execs: unknown[] = [];
    const core = { exec: async (...args: unknown[]) => void execs.push(args) } as unknown as TaskCore;
    registerTaskService(server, core, {
      shutdown: () => undefined,
      decodeOptions: () => ({ runc: {} }),
      shimPid: process.pid,
      log: { debug: () => undefined, warn: () => undefined },
    });
    const path = join(dir, 's.sock');
    server.listen(await listenPipe({ path }));
    cleanups.push(() => server.close());
    const client = await TtrpcClient.connect(path, { timeoutMs: 2000 });
    cleanups.push(() => client.close());
    const spec = { args: ['true'], cwd: '/' };
    const request = ExecProcessRequest.encode(
      ExecProcessRequest.fromPartial({ id: 'c1', execId: 'e1', spec: { typeUrl: 'types.example/not.a.Process', value: Buffer.from(JSON.stringify(spec)) } }),
    ).finish();
    await client.call(TASK_SERVICE_V2, 'Exec', request);
    expect(execs).toEqual([['c1', 'e1', expect.objectContaining({ terminal: false }), spec]]);
    // no spec at all is still refused
    const none = ExecProcessRequest.encode(ExecProcessRequest.fromPartial({ id: 'c1', execId: 'e2' })).finish();
    await expect(client.call(TASK_SERVICE_V2, 'Exec', none)).rejects.toMatchObject({ code: Code.InvalidArgument });
  });
});
