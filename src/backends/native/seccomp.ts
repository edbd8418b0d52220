/**
 * OCI seccomp profile → classic BPF program (struct sock_filter[], 8 bytes each), for
 * seccomp(SECCOMP_SET_MODE_FILTER) in the helper. No libseccomp: the program is small
 * and its shape is ours to reason about.
 *
 * Shape (every jump forward, every offset under 256, so any profile size works):
 *
 *   ld arch;  jeq AUDIT_ARCH_X86_64 → native;  <other listed arches → default action>;  ret KILL_PROCESS
 *   native:   ld nr;  jge 0x40000000 (x32 ABI) → as a foreign arch
 *             groups of ≤ 200 `jeq nr` for syscalls with one unconditional action, each group
 *               ending `ja +1; ret <action>`
 *             per syscall with argument rules: `jeq nr` guarding a block that tries its rules
 *               in profile order (first match wins) and ends `ret <default>`
 *             ret <default action>
 *
 * Semantics chosen where libseccomp's are implicit: the first matching rule of a syscall
 * wins; names unknown on this architecture are skipped (as runc does, with a warning);
 * an architecture that is listed but whose syscall table we do not have gets the default
 * action for every call, and is refused outright when the default allows (a deny-list
 * would be bypassable through it).
 */
import { invalidArgument, unimplemented } from '../../core/errors.js';
import type { OciSeccomp, OciSeccompArg } from './spec.js';
import { SYSCALLS_X86_64 } from './syscalls-x86_64.js';

// BPF opcodes (linux/filter.h)
const BPF_LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JMP_JEQ_K = 0x15;
const BPF_JMP_JGT_K = 0x25;
const BPF_JMP_JGE_K = 0x35;
const BPF_JMP_JSET_K = 0x45;
const BPF_JMP_JA = 0x05;
const BPF_RET_K = 0x06;
const BPF_ALU_AND_K = 0x54;

const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;

const RET_KILL_PROCESS = 0x80000000;
const RET_KILL_THREAD = 0x00000000;
const RET_TRAP = 0x00030000;
const RET_ERRNO = 0x00050000;
const RET_TRACE = 0x7ff00000;
const RET_LOG = 0x7ffc0000;
const RET_ALLOW = 0x7fff0000;

const EPERM = 1;

/** SCMP_ARCH_* names libseccomp knows → AUDIT_ARCH_* (for the arch check) */
const ARCHES: Record<string, number> = {
  SCMP_ARCH_X86: 0x40000003,
  SCMP_ARCH_X86_64: AUDIT_ARCH_X86_64,
  SCMP_ARCH_X32: AUDIT_ARCH_X86_64, // same audit arch, syscall numbers with bit 30 set
  SCMP_ARCH_ARM: 0x40000028,
  SCMP_ARCH_AARCH64: 0xc00000b7,
  SCMP_ARCH_MIPS: 0x00000008,
  SCMP_ARCH_MIPS64: 0x80000008,
  SCMP_ARCH_MIPS64N32: 0xa0000008,
  SCMP_ARCH_MIPSEL: 0x40000008,
  SCMP_ARCH_MIPSEL64: 0xc0000008,
  SCMP_ARCH_MIPSEL64N32: 0xe0000008,
  SCMP_ARCH_PPC: 0x00000014,
  SCMP_ARCH_PPC64: 0x80000015,
  SCMP_ARCH_PPC64LE: 0xc0000015,
  SCMP_ARCH_S390: 0x00000016,
  SCMP_ARCH_S390X: 0x80000016,
  SCMP_ARCH_RISCV64: 0xc00000f3,
};

const FILTER_FLAGS: Record<string, number> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 32,
};

interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const stmt = (code: number, k: number): Insn => ({ code, jt: 0, jf: 0, k: k >>> 0 });
const jump = (code: number, k: number, jt: number, jf: number): Insn => {
  if (jt > 255 || jf > 255 || jt < 0 || jf < 0) throw new RangeError(`BPF jump out of range (${jt}, ${jf})`);
  return { code, jt, jf, k: k >>> 0 };
};

/** a rule action name → SECCOMP_RET_* value */
export function actionValue(action: string, errnoRet: number | undefined, field: string): number {
  switch (action) {
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return RET_KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return RET_KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return RET_TRAP;
    case 'SCMP_ACT_ERRNO':
      return (RET_ERRNO | ((errnoRet ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (RET_TRACE | ((errnoRet ?? EPERM) & 0xffff)) >>> 0;
    case 'SCMP_ACT_LOG':
      return RET_LOG;
    case 'SCMP_ACT_ALLOW':
      return RET_ALLOW;
    case 'SCMP_ACT_NOTIFY':
      throw unimplemented(`${field}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported by the native backend yet`);
    default:
      throw invalidArgument(`${field}: unknown seccomp action ${JSON.stringify(action)}`);
  }
}

const argLo = (i: number) => 16 + 8 * i;
const argHi = (i: number) => 16 + 8 * i + 4;

/**
 * Instructions testing one argument condition; they fall through when it holds and jump
 * `failJump` (counted from the end of this sequence) when it does not. Built back to
 * front so each jump knows how far the failure target is.
 */
function condition(a: OciSeccompArg, failJump: number, field: string): Insn[] {
  const hi = Number(a.value >> 32n);
  const lo = Number(a.value & 0xffffffffn);
  const i = a.index;
  // `fail(n)`: distance from an instruction with n instructions after it (in this sequence) to the failure target
  const f = (after: number) => after + failJump;
  switch (a.op) {
    case 'SCMP_CMP_EQ':
      return [stmt(BPF_LD_W_ABS, argHi(i)), jump(BPF_JMP_JEQ_K, hi, 0, f(2)), stmt(BPF_LD_W_ABS, argLo(i)), jump(BPF_JMP_JEQ_K, lo, 0, f(0))];
    case 'SCMP_CMP_NE':
      // holds unless both halves are equal
      return [stmt(BPF_LD_W_ABS, argHi(i)), jump(BPF_JMP_JEQ_K, hi, 0, 2), stmt(BPF_LD_W_ABS, argLo(i)), jump(BPF_JMP_JEQ_K, lo, f(0), 0)];
    case 'SCMP_CMP_MASKED_EQ': {
      const want = a.valueTwo;
      const wHi = Number(want >> 32n);
      const wLo = Number(want & 0xffffffffn);
      return [
        stmt(BPF_LD_W_ABS, argHi(i)),
        stmt(BPF_ALU_AND_K, hi),
        jump(BPF_JMP_JEQ_K, wHi, 0, f(3)),
        stmt(BPF_LD_W_ABS, argLo(i)),
        stmt(BPF_ALU_AND_K, lo),
        jump(BPF_JMP_JEQ_K, wLo, 0, f(0)),
      ];
    }
    case 'SCMP_CMP_GT':
    case 'SCMP_CMP_GE':
    case 'SCMP_CMP_LT':
    case 'SCMP_CMP_LE': {
      // hi > vhi: greater; hi == vhi: decide on lo; else: less
      const greaterSide = a.op === 'SCMP_CMP_GT' || a.op === 'SCMP_CMP_GE';
      const loOp = a.op === 'SCMP_CMP_GT' || a.op === 'SCMP_CMP_LE' ? BPF_JMP_JGT_K : BPF_JMP_JGE_K;
      // sequence: [0] ld hi; [1] jgt hi → (greater); [2] jeq hi → lo test, else (less); [3] ld lo; [4] j(lo) → (true/false)
      // "greater" holds for GT/GE; for LT/LE it fails. A lo test true means >(=) for GT/GE, and for LT/LE
      // (tested as the negation GE/GT) means fail.
      const seq: Insn[] = [stmt(BPF_LD_W_ABS, argHi(i))];
      if (greaterSide) {
        seq.push(jump(BPF_JMP_JGT_K, hi, 3, 0)); // greater: skip to success (past the last insn)
        seq.push(jump(BPF_JMP_JEQ_K, hi, 0, f(2))); // less: fail
        seq.push(stmt(BPF_LD_W_ABS, argLo(i)));
        seq.push(jump(loOp, lo, 0, f(0)));
      } else {
        seq.push(jump(BPF_JMP_JGT_K, hi, f(3), 0)); // greater: fail
        seq.push(jump(BPF_JMP_JEQ_K, hi, 0, 2)); // less: success
        seq.push(stmt(BPF_LD_W_ABS, argLo(i)));
        seq.push(jump(loOp, lo, f(0), 0));
      }
      return seq;
    }
    default:
      throw invalidArgument(`${field}.op: unknown seccomp comparison ${JSON.stringify(a.op)}`);
  }
}

interface SyscallRules {
  nr: number;
  /** profile order; the first unconditional one ends the list */
  rules: Array<{ action: number; args: OciSeccompArg[]; field: string }>;
}

export interface CompiledSeccomp {
  program: Buffer;
  flags: number;
  /** names skipped because this architecture has no such syscall */
  unknownSyscalls: string[];
}

/** The filter of an OCI `linux.seccomp` object. */
export function compileSeccomp(s: OciSeccomp, field = 'linux.seccomp', hostArch = process.arch): CompiledSeccomp {
  if (hostArch !== 'x64') throw unimplemented(`${field}: seccomp is only supported on x86_64 hosts by the native backend yet`);
  const defaultAction = actionValue(s.defaultAction, s.defaultErrnoRet, `${field}.defaultAction`);
  const defaultAllows = defaultAction === RET_ALLOW || defaultAction === RET_LOG || (defaultAction & 0xffff0000) === RET_TRACE;

  let flags = 0;
  s.flags.forEach((name, i) => {
    const v = FILTER_FLAGS[name];
    if (v === undefined) throw invalidArgument(`${field}.flags[${i}]: unknown seccomp flag ${JSON.stringify(name)}`);
    flags |= v;
  });

  const foreign = new Set<number>();
  let x32 = false;
  s.architectures.forEach((name, i) => {
    const arch = ARCHES[name];
    if (arch === undefined) throw invalidArgument(`${field}.architectures[${i}]: unknown architecture ${JSON.stringify(name)}`);
    if (name === 'SCMP_ARCH_X32') x32 = true;
    else if (arch !== AUDIT_ARCH_X86_64) foreign.add(arch);
    if (name !== 'SCMP_ARCH_X86_64' && defaultAllows) {
      throw unimplemented(`${field}.architectures[${i}]: ${name} with an allowing default action would need that architecture's syscall table`);
    }
  });

  // per syscall, rules in profile order
  const bySyscall = new Map<number, SyscallRules>();
  const unknown = new Set<string>();
  s.syscalls.forEach((rule, i) => {
    const rfield = `${field}.syscalls[${i}]`;
    const action = actionValue(rule.action, rule.errnoRet, `${rfield}.action`);
    for (const name of rule.names) {
      const nr = SYSCALLS_X86_64.get(name);
      if (nr === undefined) {
        unknown.add(name);
        continue;
      }
      let entry = bySyscall.get(nr);
      if (!entry) bySyscall.set(nr, (entry = { nr, rules: [] }));
      const last = entry.rules[entry.rules.length - 1];
      if (last && last.args.length === 0) continue; // an unconditional rule already decided
      entry.rules.push({ action, args: rule.args, field: rfield });
    }
  });

  const prog: Insn[] = [];
  // ---- architecture
  prog.push(stmt(BPF_LD_W_ABS, 4));
  const foreignArches = [...foreign];
  // jeq native → skip over the foreign checks and the kill
  prog.push(jump(BPF_JMP_JEQ_K, AUDIT_ARCH_X86_64, foreignArches.length * 2 + 1, 0));
  for (const arch of foreignArches) {
    prog.push(jump(BPF_JMP_JEQ_K, arch, 0, 1));
    prog.push(stmt(BPF_RET_K, defaultAction));
  }
  prog.push(stmt(BPF_RET_K, RET_KILL_PROCESS));
  // ---- native: x32 calls share the audit arch and are told apart by bit 30
  prog.push(stmt(BPF_LD_W_ABS, 0));
  prog.push(jump(BPF_JMP_JSET_K, X32_SYSCALL_BIT, 0, 1));
  prog.push(stmt(BPF_RET_K, x32 ? defaultAction : RET_KILL_PROCESS));

  // ---- unconditional rules, grouped by action
  const unconditional = new Map<number, number[]>();
  const conditional: SyscallRules[] = [];
  for (const entry of [...bySyscall.values()].sort((a, b) => a.nr - b.nr)) {
    const first = entry.rules[0]!;
    if (first.args.length === 0) {
      if (first.action === defaultAction) continue; // same as not listing it
      let list = unconditional.get(first.action);
      if (!list) unconditional.set(first.action, (list = []));
      list.push(entry.nr);
    } else {
      conditional.push(entry);
    }
  }
  const GROUP = 200;
  for (const [action, nrs] of unconditional) {
    for (let g = 0; g < nrs.length; g += GROUP) {
      const group = nrs.slice(g, g + GROUP);
      group.forEach((nr, i) => prog.push(jump(BPF_JMP_JEQ_K, nr, group.length - i, 0)));
      prog.push(stmt(BPF_JMP_JA, 1));
      prog.push(stmt(BPF_RET_K, action));
    }
  }

  // ---- syscalls with argument conditions
  for (const entry of conditional) {
    const block: Insn[] = [];
    for (const rule of entry.rules) {
      // conditions (AND), then the action; a failing condition jumps past this rule
      const ruleInsns: Insn[] = [stmt(BPF_RET_K, rule.action)];
      for (let j = rule.args.length - 1; j >= 0; j--) {
        // fail target: just past this rule's ret, i.e. the instructions already built
        const cond = condition(rule.args[j]!, ruleInsns.length, `${rule.field}.args[${j}]`);
        ruleInsns.unshift(...cond);
      }
      block.push(...ruleInsns);
    }
    block.push(stmt(BPF_RET_K, defaultAction));
    // the syscall number was clobbered by argument loads in earlier blocks: reload it
    prog.push(stmt(BPF_LD_W_ABS, 0));
    prog.push(jump(BPF_JMP_JEQ_K, entry.nr, 0, block.length));
    prog.push(...block);
  }
  prog.push(stmt(BPF_RET_K, defaultAction));

  if (prog.length > 4096) throw invalidArgument(`${field}: the profile compiles to ${prog.length} BPF instructions (the kernel allows 4096)`);
  const program = Buffer.alloc(prog.length * 8);
  prog.forEach((ins, i) => {
    program.writeUInt16LE(ins.code, i * 8);
    program.writeUInt8(ins.jt, i * 8 + 2);
    program.writeUInt8(ins.jf, i * 8 + 3);
    program.writeUInt32LE(ins.k, i * 8 + 4);
  });
  return { program, flags, unknownSyscalls: [...unknown] };
}

/**
 * Runs a compiled program on one seccomp_data, as the kernel would: for tests, so the
 * compiler's output is checked by behaviour rather than by instruction listings.
 */
export function evaluateSeccomp(program: Buffer, data: { nr: number; arch?: number; args?: bigint[] }): number {
  const mem = Buffer.alloc(64);
  mem.writeUInt32LE(data.nr >>> 0, 0);
  mem.writeUInt32LE((data.arch ?? AUDIT_ARCH_X86_64) >>> 0, 4);
  (data.args ?? []).forEach((a, i) => mem.writeBigUInt64LE(BigInt.asUintN(64, a), 16 + 8 * i));
  let A = 0;
  for (let pc = 0; pc < program.length / 8; pc++) {
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case BPF_LD_W_ABS:
        A = mem.readUInt32LE(k);
        break;
      case BPF_ALU_AND_K:
        A = (A & k) >>> 0;
        break;
      case BPF_JMP_JA:
        pc += k;
        break;
      case BPF_JMP_JEQ_K:
        pc += A === k ? jt : jf;
        break;
      case BPF_JMP_JGT_K:
        pc += A > k ? jt : jf;
        break;
      case BPF_JMP_JGE_K:
        pc += A >= k ? jt : jf;
        break;
      case BPF_JMP_JSET_K:
        pc += (A & k) !== 0 ? jt : jf;
        break;
      case BPF_RET_K:
        return k;
      default:
        throw new Error(`unknown BPF opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
  throw new Error('BPF program fell off its end');
}

export const SECCOMP_RET = { KILL_PROCESS: RET_KILL_PROCESS, KILL_THREAD: RET_KILL_THREAD, TRAP: RET_TRAP, ERRNO: RET_ERRNO, ALLOW: RET_ALLOW, LOG: RET_LOG } as const;
