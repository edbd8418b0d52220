import { describe, expect, it } from 'vitest';
import { DAEMON_GLIBC_TUNABLES, daemonEnv, daemonGlibcTunables, withoutDaemonTunables } from '../../src/shim/daemon-launch.js';

describe("the daemon's malloc tunables", () => {
  it('are ours alone, or appended to the inherited ones', () => {
    expect(daemonGlibcTunables(undefined)).toBe(DAEMON_GLIBC_TUNABLES);
    expect(daemonGlibcTunables('')).toBe(DAEMON_GLIBC_TUNABLES);
    expect(daemonGlibcTunables('glibc.malloc.tcache_count=7')).toBe(`glibc.malloc.tcache_count=7:${DAEMON_GLIBC_TUNABLES}`);
  });

  it('come out again exactly, leaving what was inherited', () => {
    for (const inherited of [undefined, 'glibc.malloc.tcache_count=7', `${DAEMON_GLIBC_TUNABLES}`]) {
      const env: NodeJS.ProcessEnv = { A: '1', GLIBC_TUNABLES: daemonGlibcTunables(inherited) };
      withoutDaemonTunables(env);
      expect(env.GLIBC_TUNABLES).toBe(inherited);
      expect('GLIBC_TUNABLES' in env).toBe(inherited !== undefined);
      expect(env.A).toBe('1');
    }
  });

  it('leave an environment that does not end with them alone', () => {
    const env: NodeJS.ProcessEnv = { GLIBC_TUNABLES: 'glibc.malloc.tcache_count=7' };
    withoutDaemonTunables(env);
    expect(env.GLIBC_TUNABLES).toBe('glibc.malloc.tcache_count=7');
  });

  it('are in the environment start gives the daemon, without NODE_EXTRA_CA_CERTS', () => {
    const env = daemonEnv({ PATH: '/bin', NODE_EXTRA_CA_CERTS: '/x.pem', GLIBC_TUNABLES: 'glibc.malloc.tcache_count=7' }, 'g1');
    expect(env.GLIBC_TUNABLES).toBe(`glibc.malloc.tcache_count=7:${DAEMON_GLIBC_TUNABLES}`);
    expect(env.TSSHIM_GROUP).toBe('g1');
    expect(env.NODE_EXTRA_CA_CERTS).toBeUndefined();
  });
});
