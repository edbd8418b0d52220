/**
 * Device rules for cgroup v2: cgroup2 has no devices controller, the kernel asks a
 * BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup instead. This
 * compiles the OCI rules (linux.resources.devices plus runc's default allow list, the same
 * list the v1 devices controller gets) into that eBPF program; the helper loads and
 * attaches it (helper/namespaces.c) before the container process exists.
 *
 * Semantics, as the v1 controller's: the last rule for all devices ("a *:*", allow or
 * deny) sets the default and drops the rules before it; later rules are exceptions, and
 * the last one that matches a request decides. A rule matches when its type (or "a") and
 * its major and minor (or wildcards) match and its access covers every access asked for.
 *
 * Context (struct bpf_cgroup_dev_ctx): u32 access_type = access << 16 | type, u32 major,
 * u32 minor. Return 1 to allow, 0 to deny.
 */
import type { OciDeviceRule } from './spec.js';

// eBPF opcodes (linux/bpf.h): class | size/op | source
const LDX_MEM_W = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_MOV_X = 0xbf;
const ALU64_MOV_K = 0xb7;
const ALU64_AND_K = 0x57;
const ALU64_RSH_K = 0x77;
const JMP_JNE_K = 0x55;
const JMP_EXIT = 0x95;

const DEV_BLOCK = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR = 2; // BPF_DEVCG_DEV_CHAR
const ACCESS_BITS: Record<string, number> = { m: 1, r: 2, w: 4 }; // BPF_DEVCG_ACC_*
const ALL_ACCESS = 7;

// registers: r1 the context; r2 type, r3 access, r4 major, r5 minor, r6 scratch
const R0 = 0;
const R1 = 1;
const R2 = 2;
const R3 = 3;
const R4 = 4;
const R5 = 5;
const R6 = 6;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const insn = (code: number, dst: number, src: number, off: number, imm: number): Insn => ({ code, dst, src, off, imm });

function accessMask(access: string): number {
  let m = 0;
  for (const c of access) m |= ACCESS_BITS[c] ?? 0;
  return m;
}

/** "a *:*" whatever its access, as the v1 controller reads it (deviceRuleV1 writes "a") */
function isReset(r: OciDeviceRule): boolean {
  return r.type === 'a' && r.major < 0 && r.minor < 0;
}

/** one rule: checks that jump past it when they fail, then return its verdict */
function ruleBlock(r: OciDeviceRule): Insn[] {
  const checks: Insn[] = [];
  if (r.type !== 'a') checks.push(insn(JMP_JNE_K, R2, 0, 0, r.type === 'b' ? DEV_BLOCK : DEV_CHAR));
  const mask = accessMask(r.access);
  if (mask !== ALL_ACCESS) {
    // asked-for bits outside the rule's access: no match
    checks.push(insn(ALU64_MOV_X, R6, R3, 0, 0), insn(ALU64_AND_K, R6, 0, 0, ~mask & ALL_ACCESS), insn(JMP_JNE_K, R6, 0, 0, 0));
  }
  if (r.major >= 0) checks.push(insn(JMP_JNE_K, R4, 0, 0, r.major));
  if (r.minor >= 0) checks.push(insn(JMP_JNE_K, R5, 0, 0, r.minor));
  const verdict = [insn(ALU64_MOV_K, R0, 0, 0, r.allow ? 1 : 0), insn(JMP_EXIT, 0, 0, 0, 0)];
  const block = [...checks, ...verdict];
  // each failed check jumps to the first instruction after the block
  return block.map((i, at) => (i.code === JMP_JNE_K ? { ...i, off: block.length - at - 1 } : i));
}

/** The eBPF program (8 bytes per instruction, little-endian) for these rules, in order. */
export function compileDeviceFilter(rules: OciDeviceRule[]): Buffer {
  let start = 0;
  let defaultAllow = true; // a cgroup no rule touched allows everything, as in v1
  rules.forEach((r, i) => {
    if (isReset(r)) {
      start = i + 1;
      defaultAllow = r.allow;
    }
  });
  const prologue = [
    insn(LDX_MEM_W, R2, R1, 0, 0),
    insn(ALU64_MOV_X, R3, R2, 0, 0),
    insn(ALU64_AND_K, R2, 0, 0, 0xffff),
    insn(ALU64_RSH_K, R3, 0, 0, 16),
    insn(LDX_MEM_W, R4, R1, 4, 0),
    insn(LDX_MEM_W, R5, R1, 8, 0),
  ];
  // the last matching rule wins: check them from the last one back
  const body = rules.slice(start).reverse().flatMap(ruleBlock);
  const epilogue = [insn(ALU64_MOV_K, R0, 0, 0, defaultAllow ? 1 : 0), insn(JMP_EXIT, 0, 0, 0, 0)];
  const all = [...prologue, ...body, ...epilogue];
  const out = Buffer.alloc(all.length * 8);
  all.forEach((i, k) => {
    out.writeUInt8(i.code, k * 8);
    out.writeUInt8((i.src << 4) | i.dst, k * 8 + 1);
    out.writeInt16LE(i.off, k * 8 + 2);
    out.writeInt32LE(i.imm, k * 8 + 4);
  });
  return out;
}
