/**
 * What the native executor supports, in the OCI runtime "features" format (runc's
 * `features` command): printed by `tsrun features` and reported by the shim's `-info`
 * when native is the configured backend (containerd 2.x reads it before Create).
 */
import { CAPABILITIES } from './linux-names.js';
import { NAMESPACES } from './plan.js';
import { RECURSIVE_MOUNT_OPTIONS } from './mount-attrs.js';

export function nativeFeatures(): Record<string, unknown> {
  return {
    ociVersionMin: '1.0.0',
    // the spec parser takes every 1.x config; containerd 1.7/2.x write 1.2.x
    ociVersionMax: '1.2.0',
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: [
      'async', 'atime', 'bind', 'defaults', 'dev', 'diratime', 'dirsync', 'exec', 'lazytime', 'loud', 'mand',
      'noatime', 'nodev', 'nodiratime', 'noexec', 'nolazytime', 'nomand', 'norelatime', 'nostrictatime', 'nosuid',
      'nosymfollow', 'private', 'rbind', 'relatime', 'remount', 'ro', 'rprivate', 'rshared', 'rslave',
      'runbindable', 'rw', 'shared', 'silent', 'slave', 'strictatime', 'suid', 'symfollow', 'sync', 'unbindable',
      // recursive attributes through mount_setattr ("rro": CRI's recursive read-only mounts)
      ...RECURSIVE_MOUNT_OPTIONS,
    ],
    linux: {
      namespaces: Object.keys(NAMESPACES),
      capabilities: Object.keys(CAPABILITIES),
      cgroup: { v1: true, v2: true, systemd: true, systemdUser: false },
      seccomp: {
        enabled: true,
        actions: ['SCMP_ACT_ALLOW', 'SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE', 'SCMP_ACT_TRAP'],
        operators: ['SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_LE', 'SCMP_CMP_LT', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE'],
        archs: ['SCMP_ARCH_X86_64'],
        knownFlags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
        supportedFlags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'],
      },
      // what the runtime can do, as runc reports it: AppArmor profiles are applied where the
      // host has AppArmor on; SELinux labels are not supported
      apparmor: { enabled: true },
      selinux: { enabled: false },
    },
    annotations: { 'io.github.tsshim.runtime': 'tsrun' },
  };
}
