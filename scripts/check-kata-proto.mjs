#!/usr/bin/env node
// Checks our Kata agent protocol definitions (src/proto/defs/kata) against upstream's:
//   node scripts/check-kata-proto.mjs <kata-containers>/src/libs/protocols/protos
// Every message and service method we define must exist upstream with the same full name,
// and every field must have the same number, name, cardinality, type and oneof, and every
// upstream field of those messages must be ours too (complete messages, not just a subset
// of fields). Upstream messages and RPCs we leave out are fine. Needs protoc (Debian:
// protobuf-compiler). Run it after editing a kata .proto, or against a newer Kata release.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFileRegistry, fromBinary } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';

const upstreamDir = process.argv[2];
if (!upstreamDir) {
  console.error('usage: node scripts/check-kata-proto.mjs <kata-containers>/src/libs/protocols/protos');
  process.exit(2);
}
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ourDefs = join(repoRoot, 'src/proto/defs');

function registry(includeDir, files) {
  const work = mkdtempSync(join(tmpdir(), 'kata-proto-'));
  try {
    const out = join(work, 'set.pb');
    execFileSync('protoc', [`-I${includeDir}`, '--include_imports', `--descriptor_set_out=${out}`, ...files], { cwd: includeDir, stdio: ['ignore', 'inherit', 'inherit'] });
    return createFileRegistry(fromBinary(FileDescriptorSetSchema, readFileSync(out)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** What must match for two fields to be the same on the wire (and in generated names). */
function fieldShape(f) {
  const type =
    f.fieldKind === 'scalar' ? `scalar:${f.scalar}` :
    f.fieldKind === 'enum' ? `enum:${f.enum.typeName}` :
    f.fieldKind === 'message' ? `message:${f.message.typeName}` :
    f.fieldKind === 'list' ? `list:${f.listKind}:${f.scalar ?? f.message?.typeName ?? f.enum?.typeName}` :
    f.fieldKind === 'map' ? `map:${f.mapKey}:${f.mapKind}:${f.scalar ?? f.message?.typeName ?? f.enum?.typeName}` : f.fieldKind;
  return `${f.number} ${f.name} ${type}${f.oneof ? ` oneof:${f.oneof.name}` : ''}${f.proto.proto3Optional ? ' optional' : ''}`;
}

const ours = registry(ourDefs, ['kata/agent.proto', 'kata/health.proto']);
const upstream = registry(resolve(upstreamDir), ['agent.proto', 'health.proto']);

const problems = [];
let messages = 0;
let methods = 0;
for (const desc of ours) {
  if (desc.kind === 'message' && !desc.typeName.startsWith('google.protobuf.')) {
    messages++;
    const up = upstream.getMessage(desc.typeName);
    if (!up) {
      problems.push(`message ${desc.typeName}: not upstream`);
      continue;
    }
    const mine = new Map(desc.fields.map((f) => [f.number, fieldShape(f)]));
    const theirs = new Map(up.fields.map((f) => [f.number, fieldShape(f)]));
    for (const [n, shape] of mine) {
      if (theirs.get(n) !== shape) problems.push(`${desc.typeName}: ours "${shape}", upstream "${theirs.get(n) ?? 'no field ' + n}"`);
    }
    for (const [n, shape] of theirs) if (!mine.has(n)) problems.push(`${desc.typeName}: upstream field "${shape}" missing`);
  } else if (desc.kind === 'enum') {
    const up = upstream.getEnum(desc.typeName);
    const mine = desc.values.map((v) => `${v.name}=${v.number}`).join(',');
    const theirs = up?.values.map((v) => `${v.name}=${v.number}`).join(',');
    if (mine !== theirs) problems.push(`enum ${desc.typeName}: ours ${mine}, upstream ${theirs ?? 'none'}`);
  } else if (desc.kind === 'service') {
    const up = upstream.getService(desc.typeName);
    if (!up) {
      problems.push(`service ${desc.typeName}: not upstream`);
      continue;
    }
    for (const m of desc.methods) {
      methods++;
      const um = up.methods.find((x) => x.name === m.name);
      const mine = `${m.input.typeName} -> ${m.output.typeName} ${m.methodKind}`;
      const theirs = um && `${um.input.typeName} -> ${um.output.typeName} ${um.methodKind}`;
      if (mine !== theirs) problems.push(`/${desc.typeName}/${m.name}: ours ${mine}, upstream ${theirs ?? 'none'}`);
    }
  }
}

for (const p of problems) console.error(p);
console.error(`check-kata-proto: ${messages} messages, ${methods} methods compared, ${problems.length} problem(s)`);
process.exit(problems.length ? 1 : 0);
