#!/usr/bin/env bash
# Regenerates src/proto/gen/ from our own .proto sources in src/proto/defs/.
# The output is committed, so CI and users never need protoc; run this only
# after editing a .proto file. Requires `protoc` (Debian: protobuf-compiler)
# and the ts-proto dev dependency. Same protoc + ts-proto versions => same bytes.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
defs="$repo_root/src/proto/defs"
out="$repo_root/src/proto/gen"
plugin="$repo_root/node_modules/.bin/protoc-gen-ts_proto"

command -v protoc >/dev/null || { echo "gen-proto: protoc not found (apt-get install protobuf-compiler)" >&2; exit 1; }
[ -x "$plugin" ] || { echo "gen-proto: $plugin missing (npm install)" >&2; exit 1; }

# Why these options:
#  forceLong=bigint         uint64 counters (metrics) and int64 timestamps exceed 2^53.
#  useDate=false            Timestamp stays {seconds, nanos}: Go's zero time (year 1) must round-trip.
#  outputJsonMethods=false  we never speak protobuf JSON; keeps the modules small.
#  outputServices=generic-definitions  plain const objects naming service/methods/types,
#                           no runtime framework, for our ttrpc server and client.
#  useExactTypes=false      simple fromPartial(DeepPartial<T>) signatures, cheaper typechecking.
#  unrecognizedEnum=false   no synthetic UNRECOGNIZED=-1 member (LogLevel is an open enum
#                           with real negative values).
#  useOptionals=none        every field present in the TS types (proto3 defaults filled in).
opts="esModuleInterop=true,forceLong=bigint,useDate=false,outputJsonMethods=false"
opts+=",outputPartialMethods=true,outputServices=generic-definitions,useExactTypes=false"
opts+=",unrecognizedEnum=false,useOptionals=none,importSuffix=.js,env=node"

rm -rf "$out"
mkdir -p "$out"

# Sorted list so protoc sees the files in the same order on every machine.
mapfile -t files < <(cd "$defs" && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)

# Only our defs dir is on the include path: the google/protobuf well-known types
# come from our own minimal copies there, not from the system protoc includes.
(cd "$defs" && protoc \
  --plugin=protoc-gen-ts_proto="$plugin" \
  --proto_path=. \
  --ts_proto_out="$out" \
  --ts_proto_opt="$opts" \
  "${files[@]}")

echo "gen-proto: generated $(find "$out" -name '*.ts' | wc -l) files into src/proto/gen" >&2
