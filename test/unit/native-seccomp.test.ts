/**
 * The seccomp compiler, checked by behaviour: compiled programs are run on syscall
 * data by a BPF interpreter (evaluateSeccomp), as the kernel would run them.
 */
import { describe, expect, it } from 'vitest';
import { SECCOMP_RET, compileSeccomp, evaluateSeccomp } from '../../src/backends/native/seccomp.js';
import type { OciSeccomp } from '../../src/backends/native/spec.js';
import { SYSCALLS_X86_64 } from '../../src/backends/native/syscalls-x86_64.js';

const nr = (name: string) => SYSCALLS_X86_64.get(name)!;
const ERRNO = (e: number) => (SECCOMP_RET.ERRNO | e) >>> 0;
const X86_64 = 0xc000003e;
const I386 = 0x40000003;

function profile(p: Partial<OciSeccomp>): OciSeccomp {
  return { defaultAction: 'SCMP_ACT_ALLOW', architectures: [], flags: [], syscalls: [], ...p };
}

describe('compileSeccomp', () => {
  it('knows the x86_64 table', () => {
    expect(nr('read')).toBe(0);
    expect(nr('mkdir')).toBe(83);
    expect(nr('clone3')).toBe(435);
    expect(nr('fchmodat2')).toBe(452);
  });

  it('denies listed syscalls with EPERM by default and allows the rest', () => {
    const { program } = compileSeccomp(profile({ syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', args: [] }] }));
    expect(evaluateSeccomp(program, { nr: nr('mkdir') })).toBe(ERRNO(1));
    expect(evaluateSeccomp(program, { nr: nr('mkdirat') })).toBe(ERRNO(1));
    expect(evaluateSeccomp(program, { nr: nr('read') })).toBe(SECCOMP_RET.ALLOW);
  });

  it('kills other architectures and x32 calls unless listed', () => {
    const { program } = compileSeccomp(profile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW', args: [] }] }));
    expect(evaluateSeccomp(program, { nr: 0, arch: I386 })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(evaluateSeccomp(program, { nr: 0x40000000 })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(evaluateSeccomp(program, { nr: 0 })).toBe(SECCOMP_RET.ALLOW);
    expect(evaluateSeccomp(program, { nr: 1 })).toBe(ERRNO(1));
    const listed = compileSeccomp(profile({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 38, architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] })).program;
    expect(evaluateSeccomp(listed, { nr: 0, arch: I386 })).toBe(ERRNO(38));
    expect(evaluateSeccomp(listed, { nr: 0x40000000 })).toBe(ERRNO(38));
  });

  it('refuses foreign architectures under an allowing default (a deny-list would be bypassed)', () => {
    expect(() => compileSeccomp(profile({ architectures: ['SCMP_ARCH_X86'] }))).toThrow(expect.objectContaining({ code: 'Unimplemented' }));
  });

  it('groups hundreds of allowed syscalls without overflowing jumps', () => {
    const names = [...SYSCALLS_X86_64.keys()].filter((n) => n !== 'ptrace');
    const { program } = compileSeccomp(profile({ defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names, action: 'SCMP_ACT_ALLOW', args: [] }] }));
    for (const n of names) expect(evaluateSeccomp(program, { nr: nr(n) })).toBe(SECCOMP_RET.ALLOW);
    expect(evaluateSeccomp(program, { nr: nr('ptrace') })).toBe(ERRNO(1));
  });

  const cmp = (op: string, value: bigint, valueTwo = 0n) =>
    compileSeccomp(
      profile({
        defaultAction: 'SCMP_ACT_ERRNO',
        syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value, valueTwo, op }] }],
      }),
    ).program;
  const allowed = (program: Buffer, arg: bigint) => evaluateSeccomp(program, { nr: nr('personality'), args: [0n, arg] }) === SECCOMP_RET.ALLOW;
  const big = (1n << 32n) + 5n; // exercises the high word

  it.each([
    ['SCMP_CMP_EQ', [[big, true], [5n, false], [big + 1n, false]]],
    ['SCMP_CMP_NE', [[big, false], [5n, true], [big + 1n, true]]],
    ['SCMP_CMP_GT', [[big + 1n, true], [big, false], [5n, false], [1n << 40n, true]]],
    ['SCMP_CMP_GE', [[big + 1n, true], [big, true], [big - 1n, false], [(1n << 32n) + 4n, false]]],
    ['SCMP_CMP_LT', [[big - 1n, true], [big, false], [1n << 40n, false], [0n, true]]],
    ['SCMP_CMP_LE', [[big - 1n, true], [big, true], [big + 1n, false], [7n, true]]],
  ] as const)('compares 64-bit arguments with %s', (op, cases) => {
    const program = cmp(op, big);
    for (const [arg, want] of cases) expect([arg, allowed(program, arg)]).toEqual([arg, want]);
  });

  it('compares masked arguments', () => {
    // allow when bits 0x10 of the high word and 0x1 of the low word are set, as in 0x10_0000_0001
    const program = cmp('SCMP_CMP_MASKED_EQ', 0x10_0000_0001n, 0x10_0000_0001n);
    expect(allowed(program, 0x10_0000_0001n)).toBe(true);
    expect(allowed(program, 0xff_ffff_ffffn)).toBe(true);
    expect(allowed(program, 0x10_0000_0000n)).toBe(false);
    expect(allowed(program, 1n)).toBe(false);
  });

  it('tries rules of a syscall in order, first match wins, then the default', () => {
    const { program } = compileSeccomp(
      profile({
        defaultAction: 'SCMP_ACT_ERRNO',
        syscalls: [
          { names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: 22, args: [{ index: 0, value: 0x10000000n, valueTwo: 0x10000000n, op: 'SCMP_CMP_MASKED_EQ' }] },
          { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000n, valueTwo: 0n, op: 'SCMP_CMP_MASKED_EQ' }] },
          { names: ['read'], action: 'SCMP_ACT_ALLOW', args: [] },
        ],
      }),
    );
    expect(evaluateSeccomp(program, { nr: nr('clone'), args: [0x10000000n] })).toBe(ERRNO(22)); // CLONE_NEWUSER
    expect(evaluateSeccomp(program, { nr: nr('clone'), args: [0x11n] })).toBe(SECCOMP_RET.ALLOW); // no namespace flags
    expect(evaluateSeccomp(program, { nr: nr('clone'), args: [0x20000000n] })).toBe(ERRNO(1)); // CLONE_NEWPID: no rule matched
    expect(evaluateSeccomp(program, { nr: nr('read') })).toBe(SECCOMP_RET.ALLOW);
  });

  it('maps actions and flags, and names what it does not know', () => {
    const c = compileSeccomp(profile({ flags: ['SECCOMP_FILTER_FLAG_LOG'], syscalls: [{ names: ['kill'], action: 'SCMP_ACT_KILL_PROCESS', args: [] }, { names: ['nosuchcall'], action: 'SCMP_ACT_ERRNO', args: [] }] }));
    expect(c.flags).toBe(2);
    expect(c.unknownSyscalls).toEqual(['nosuchcall']);
    expect(evaluateSeccomp(c.program, { nr: nr('kill') })).toBe(SECCOMP_RET.KILL_PROCESS);
    expect(() => compileSeccomp(profile({ defaultAction: 'SCMP_ACT_MAYBE' }))).toThrow('linux.seccomp.defaultAction: unknown seccomp action "SCMP_ACT_MAYBE"');
    expect(() => compileSeccomp(profile({ flags: ['NOPE'] }))).toThrow('linux.seccomp.flags[0]: unknown seccomp flag "NOPE"');
    expect(() => compileSeccomp(profile({ syscalls: [{ names: ['read'], action: 'SCMP_ACT_NOTIFY', args: [] }] }))).toThrow(expect.objectContaining({ code: 'Unimplemented' }));
    expect(() => compileSeccomp(profile({}), 'linux.seccomp', 'arm64')).toThrow(expect.objectContaining({ code: 'Unimplemented' }));
  });

  it('checks the architecture first', () => {
    const { program } = compileSeccomp(profile({}));
    expect(program.readUInt16LE(0)).toBe(0x20);
    expect(program.readUInt32LE(4)).toBe(4); // offsetof(seccomp_data, arch)
    expect(program.readUInt32LE(12)).toBe(X86_64);
  });
});
