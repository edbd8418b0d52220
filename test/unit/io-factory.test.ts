import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { ShimError } from '../../src/core/errors.js';
import type { IoFactory } from '../../src/core/task-core.js';
import { StdioOpener } from '../../src/io/process-io.js';
import { tempDir } from './io-fixtures.js';

describe('StdioOpener', () => {
  it('is the IoFactory the task core takes, and passes its defaults on', async () => {
    const setWinsize = vi.fn();
    const factory: IoFactory = new StdioOpener({ setWinsize, drainTimeoutMs: 5 });
    const io = await factory.open({ stdin: '', stdout: '', stderr: '', terminal: true }, { id: 'a', namespace: 'b' });
    expect(io.stdio).toEqual({ terminal: true, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' });
    await io.release();
  });

  it('keeps a default when the call passes undefined for it', async () => {
    const dir = tempDir();
    try {
      const logger = join(dir.path, 'hang');
      writeFileSync(logger, '#!/bin/sh\nexec sleep 30\n'); // holds fd 5, never ready
      chmodSync(logger, 0o755);
      const factory = new StdioOpener({ deadlineMs: 200 });
      const t0 = Date.now();
      const err = await factory
        .open({ stdin: '', stdout: `binary://${logger}`, stderr: '', terminal: false }, {
          id: 'a',
          namespace: 'b',
          ioUid: undefined,
          deadlineMs: undefined,
        })
        .catch((e: unknown) => e);
      expect((err as ShimError).code).toBe('DeadlineExceeded');
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      dir.cleanup();
    }
  });
});
