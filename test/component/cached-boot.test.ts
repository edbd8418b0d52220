/**
 * The boot loaders (src/boot/cached-boot.ts) of the daemon (dist/shim/daemon-boot.cjs) and
 * of tsrun (bin/tsrun → dist/native/tsrun-boot.cjs) and their V8 code caches: the build's
 * cache is accepted under the flags the programs really run with, and a cache V8 rejects
 * (other flags, as after a Node upgrade, or damaged) only costs compile time.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect } from 'vitest';
import { execa } from 'execa';
import { daemonEntry, daemonNodeFlags } from '../../src/shim/daemon-launch.js';
import { CODE_CACHE_CHECK_ENV } from '../../src/boot/code-cache-env.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { ConnectRequest, ConnectResponse } from '../../src/proto/gen/containerd/task/v2/shim.js';

function checkCache(flags: string[]): Promise<string> {
  return execa(process.execPath, [...flags, daemonEntry()], { env: { [CODE_CACHE_CHECK_ENV]: '1' } }).then((r) => r.stdout.trim());
}

describe('boot loaders with a code cache', () => {
  it('the build made a code cache that V8 accepts under the daemon flags', async () => {
    expect(await checkCache(daemonNodeFlags())).toBe('hit');
  });

  it('bin/tsrun runs its bundle with a code cache that V8 accepts (its flags are the daemon\'s)', async () => {
    const tsrun = path.join(path.dirname(daemonEntry()), '../../bin/tsrun');
    const r = await execa(tsrun, [], { env: { [CODE_CACHE_CHECK_ENV]: '1' } });
    expect(r.stdout.trim()).toBe('hit');
  });

  it('a corrupt cache is rejected, not run', async () => {
    // a copy of the boot loader and its bundle, with garbage where the cache goes
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-boot-'));
    try {
      const shimDir = path.dirname(daemonEntry());
      const bundle = fs.readdirSync(shimDir).find((f) => /^daemon-[0-9a-f]{16}\.cjs$/.test(f))!;
      const cache = bundle.replace(/\.cjs$/, '.cache');
      fs.copyFileSync(daemonEntry(), path.join(dir, 'daemon-boot.cjs'));
      fs.copyFileSync(path.join(shimDir, bundle), path.join(dir, bundle));
      const good = fs.readFileSync(path.join(shimDir, cache));
      const bad = Buffer.from(good);
      for (let i = 64; i < bad.length; i += 97) bad[i] ^= 0x5a;
      fs.writeFileSync(path.join(dir, cache), bad);
      const r = await execa(process.execPath, [...daemonNodeFlags(), path.join(dir, 'daemon-boot.cjs')], { env: { [CODE_CACHE_CHECK_ENV]: '1' } });
      expect(r.stdout.trim()).toBe('rejected');
      fs.writeFileSync(path.join(dir, cache), good.subarray(0, good.length >> 1));
      const r2 = await execa(process.execPath, [...daemonNodeFlags(), path.join(dir, 'daemon-boot.cjs')], { env: { [CODE_CACHE_CHECK_ENV]: '1' } });
      expect(r2.stdout.trim()).toBe('rejected');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a cache made by another Node is not fed to this one, even where V8 would take it', async () => {
    // a copy of the cache as if another Node release had made it: V8 here would accept it
    // (same V8 version, same flags), the loader must not offer it
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-boot-'));
    try {
      const shimDir = path.dirname(daemonEntry());
      const bundle = fs.readdirSync(shimDir).find((f) => /^daemon-[0-9a-f]{16}\.cjs$/.test(f))!;
      const cache = bundle.replace(/\.cjs$/, '.cache');
      for (const f of [bundle, 'daemon-boot.cjs']) fs.copyFileSync(path.join(shimDir, f), path.join(dir, f));
      const made = fs.readFileSync(path.join(shimDir, cache));
      const identity = `${process.version} v8-${process.versions.v8} ${process.arch}\n`;
      expect(made.subarray(0, identity.length).toString('latin1')).toBe(identity);
      const run = () => execa(process.execPath, [...daemonNodeFlags(), path.join(dir, 'daemon-boot.cjs')], { env: { [CODE_CACHE_CHECK_ENV]: '1' } }).then((r) => r.stdout.trim());
      fs.writeFileSync(path.join(dir, cache), made);
      expect(await run()).toBe('hit');
      const other = `v20.0.0 v8-${process.versions.v8} ${process.arch}\n`;
      fs.writeFileSync(path.join(dir, cache), Buffer.concat([Buffer.from(other), made.subarray(identity.length)]));
      expect(await run()).toBe('other-node');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a rejected cache falls back to compiling: the daemon still answers', async () => {
    // --opt (the daemon runs with --no-opt) changes V8's flag hash, so the cache made
    // under the daemon flags is refused
    const flags = [...daemonNodeFlags(), '--opt'];
    expect(await checkCache(flags)).toBe('rejected');

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-boot-'));
    const socket = path.join(dir, 's.sock');
    const child = execa(process.execPath, [...flags, daemonEntry(), '-namespace', 'boot-test', '-address', path.join(dir, 'none.sock'), '-publish-binary', '', '-id', 'boot', '-socket', socket, 'serve'], {
      cwd: dir,
      reject: false,
      stdio: 'ignore',
    });
    try {
      let client: TtrpcClient | undefined;
      for (let i = 0; i < 200 && !client; i++) {
        client = await TtrpcClient.connect(socket).catch(async () => {
          await new Promise((r) => setTimeout(r, 25));
          return undefined;
        });
      }
      expect(client).toBeDefined();
      const raw = await client!.call('containerd.task.v2.Task', 'Connect', ConnectRequest.encode({ id: 'boot' }).finish(), { timeoutMs: 5_000 });
      expect(ConnectResponse.decode(raw).shimPid).toBe(child.pid);
      await client!.close();
    } finally {
      child.kill('SIGKILL');
      await child;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the daemon's boot", () => {
  // execa and the metrics types live in lazy chunks (scripts/build-cached-bundle.mjs): a
  // booted, idle daemon has not loaded them.
  it('loads no lazy chunk before it needs one', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsshim-boot-'));
    const socket = path.join(dir, 's.sock');
    const report = path.join(dir, 'loaded.json');
    const preload = path.join(dir, 'report-loaded.cjs');
    fs.writeFileSync(
      preload,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(report)}, JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache) })));\n`,
    );
    // -r is a Node option, not a V8 flag: the code cache is still used
    const child = execa(process.execPath, [...daemonNodeFlags(), '-r', preload, daemonEntry(), '-namespace', 'boot-test', '-address', path.join(dir, 'none.sock'), '-publish-binary', '', '-id', 'boot', '-socket', socket, 'serve'], {
      cwd: dir,
      reject: false,
      stdio: 'ignore',
    });
    try {
      let client: TtrpcClient | undefined;
      for (let i = 0; i < 200 && !client; i++) {
        client = await TtrpcClient.connect(socket).catch(async () => {
          await new Promise((r) => setTimeout(r, 25));
          return undefined;
        });
      }
      expect(client).toBeDefined();
      await client!.call('containerd.task.v2.Task', 'Connect', ConnectRequest.encode({ id: 'boot' }).finish(), { timeoutMs: 5_000 });
      await client!.close();
      child.kill('SIGTERM');
      await child;
      const loaded = JSON.parse(fs.readFileSync(report, 'utf8')) as { builtins: string[]; files: string[] };
      expect(loaded.builtins).toContain('NativeModule vm'); // the list is real
      // … nor the built-ins only some paths need (src/sys/lazy-builtins.ts, src/sys/uv-pipe.ts)
      for (const m of ['net', 'stream', 'child_process', 'cluster']) expect(loaded.builtins).not.toContain(`NativeModule ${m}`);
      expect(loaded.files.some((f) => /daemon-[0-9a-f]{16}\.cjs$/.test(f) || f.endsWith('daemon-boot.cjs'))).toBe(true);
      expect(loaded.files.filter((f) => f.includes('-lazy-'))).toEqual([]);
      // … and the chunks are there, named in the bundle, which has no execa of its own
      const shimDir = path.dirname(daemonEntry());
      const bundle = fs.readFileSync(path.join(shimDir, fs.readdirSync(shimDir).find((f) => /^daemon-[0-9a-f]{16}\.cjs$/.test(f))!), 'latin1');
      for (const chunk of ['execa', 'metrics-v1', 'metrics-v2']) {
        const file = fs.readdirSync(shimDir).find((f) => new RegExp(`^daemon-lazy-${chunk}-[0-9a-f]{16}\\.cjs$`).test(f) && bundle.includes(f));
        expect(file, `lazy chunk ${chunk}`).toBeDefined();
      }
      expect(bundle).not.toContain('Command failed with exit code');
    } finally {
      child.kill('SIGKILL');
      await child;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
