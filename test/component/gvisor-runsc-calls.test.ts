/**
 * The gvisor backend's own runsc calls (the platform probe, `--version`, `runsc wait`) in a
 * fresh Node process with the Reaper installed, as in the daemon: they go through posix_spawn
 * like every runtime call (no child_process, net or streams loaded), the probe's and the
 * version's answers are kept in the facts file keyed by the binary's identity (a second
 * process asks runsc nothing; a changed binary is asked again), and `runsc wait` has no
 * deadline but ends when killed by the pid it reported. A stand-in runsc logs its calls.
 * Importing the backend loads neither node:crypto nor node:fs/promises. Runs the build
 * (dist/src), since it needs a process vitest has not touched.
 */
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { repoRoot } from '../e2e/harness/repo-paths.js';

const dir = mkdtempSync(path.join(tmpdir(), 'tsshim-runsc-calls-'));
const fakeRunsc = path.join(dir, 'runsc');
const callLog = path.join(dir, 'calls.log');

/** a runsc that boots only with ptrace, has a release date, and waits until told (a file) */
function writeFakeRunsc(release: string): void {
  writeFileSync(
    fakeRunsc,
    `#!/bin/sh
echo "$*" >> ${callLog}
case "$*" in
  --version) echo "runsc version 0.0~${release}.0"; echo "spec: 1.0.2-dev"; exit 0 ;;
  *--platform=systrap*" do "*) echo "systrap: not supported on this kernel" >&2; exit 1 ;;
  *--platform=ptrace*" do "*) exit 0 ;;
  *" wait c-exits") echo '{"id":"c-exits","exitStatus":3}'; exit 0 ;;
  *" wait c-forever") exec sleep 60 ;;
esac
echo "unexpected: $*" >&2
exit 2
`,
  );
  chmodSync(fakeRunsc, 0o755);
}

const dist = (p: string) => JSON.stringify(path.join(repoRoot, 'dist/src', p));
const SCRIPT = `
const loadedBefore = new Set(process.moduleLoadList);
const { Reaper } = await import(${dist('sys/reaper.js')});
const { GvisorBackend } = await import(${dist('backends/gvisor/backend.js')});
const { PosixSpawnCommand } = await import(${dist('backends/runc/spawn-command.js')});
const { bestPlatform, runscRelease } = await import(${dist('backends/gvisor/runsc-facts.js')});
// node:crypto and node:fs/promises cost a new shim several ms each on its first container
const loadedByImport = ['NativeModule crypto', 'NativeModule fs/promises'].filter((m) => process.moduleLoadList.includes(m) && !loadedBefore.has(m));
const reaper = Reaper.install();
const root = ${JSON.stringify(path.join(dir, 'root'))};
const backend = new GvisorBackend({ config: { binary: ${JSON.stringify(fakeRunsc)}, root, flags: [], runscConfig: {} }, root: root + '/ns', exits: reaper });
const seen = [];
backend.exits.subscribe().onExit((e) => seen.push(e.pid));
const heavy = () => process.moduleLoadList.filter((m) => /^NativeModule (child_process|net|stream)$/.test(m));
const before = heavy();
const command = PosixSpawnCommand.for(reaper);
const platform = await bestPlatform(${JSON.stringify(fakeRunsc)}, root, command);
const release = await runscRelease(${JSON.stringify(fakeRunsc)}, root, command);
const cli = backend.cliFor({}, 'ns');
const exited = await cli.wait('c-exits', () => undefined);
let waiterPid;
const forever = cli.wait('c-forever', (pid) => (waiterPid = pid));
await new Promise((r) => setTimeout(r, 300));
const stillWaiting = await Promise.race([forever.then(() => false), new Promise((r) => setTimeout(() => r(true), 50))]);
process.kill(waiterPid, 'SIGKILL');
const killed = await forever;
await new Promise((r) => setTimeout(r, 100));
const builtins = heavy().filter((m) => !before.includes(m));
console.log(JSON.stringify({ loadedByImport, platform, release, exited, stillWaiting, killed: killed ?? null, seen, builtins }));
process.exit(0);
`;

async function runScript(): Promise<Record<string, unknown>> {
  const r = await execa(process.execPath, ['--input-type=module', '-e', SCRIPT], { timeout: 30_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

const calls = (): string[] => {
  try {
    return readFileSync(callLog, 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the gvisor backend's own runsc calls", () => {
  it('go through posix_spawn, keep what they learnt per binary, and runsc wait lasts until killed', async () => {
    writeFakeRunsc('20221219');
    const first = await runScript();
    expect(first).toEqual({ loadedByImport: [], platform: 'ptrace', release: 20221219, exited: 3, stillWaiting: true, killed: null, seen: [], builtins: [] });
    expect(calls().filter((c) => / do \/bin\/true$/.test(c)).map((c) => /--platform=(\w+)/.exec(c)?.[1])).toEqual(['systrap', 'ptrace']);
    expect(calls().filter((c) => c === '--version')).toHaveLength(1);
    const facts = JSON.parse(readFileSync(path.join(dir, 'root', 'runsc-facts.json'), 'utf8')) as Record<string, { platform?: string; release?: number }>;
    expect(facts[realpathSync(fakeRunsc)]).toMatchObject({ platform: 'ptrace', release: 20221219 });

    // another shim: both answers from the file, runsc is only asked to wait
    writeFileSync(callLog, '');
    const second = await runScript();
    expect(second).toMatchObject({ platform: 'ptrace', release: 20221219 });
    expect(calls().every((c) => / wait c-/.test(c))).toBe(true);

    // a new runsc at the same path is asked again
    writeFileSync(callLog, '');
    writeFakeRunsc('20240729');
    const third = await runScript();
    expect(third).toMatchObject({ platform: 'ptrace', release: 20240729 });
    expect(calls().filter((c) => c === '--version' || / do \/bin\/true$/.test(c))).toHaveLength(3);
  });
});
