#!/usr/bin/env bash
# Regenerates schemas/generated/ from schemas/tflite.fbs (flatc) and schemas/onnx.proto (pbjs + gen-onnx-descriptor.mjs).
# Fails loudly: any missing tool or compiler error stops the script with a non-zero exit.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$here/generated"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if ! command -v flatc >/dev/null 2>&1; then
  echo "schemas: flatc not found. Install it with: apt-get install flatbuffers-compiler (flatc 2.0.8)" >&2
  exit 1
fi
echo "schemas: using $(flatc --version)"

# flatc 2.0.8 rejects the (deprecated) attribute on enum values and union members (it
# accepts it on fields and tables). Strip it there only; values keep their numbers and
# union members their positions, so the binary format is unchanged.
member='^([[:space:]]*[A-Za-z0-9_]+([[:space:]]*=[[:space:]]*[0-9]+)?)[[:space:]]*\(deprecated\)([[:space:]]*,?)[[:space:]]*$'
sed -E "s/$member/\\1\\3/" "$here/tflite.fbs" > "$work/tflite.fbs"
if grep -nE "$member" "$work/tflite.fbs"; then
  echo "schemas: failed to strip (deprecated) from enum values" >&2; exit 1
fi

rm -rf "$out/tflite"
mkdir -p "$out/tflite-tmp"
flatc --ts --gen-object-api -o "$out/tflite-tmp" "$work/tflite.fbs"
# flatc emits extension-less relative imports; Node's ESM resolver needs the .js suffix.
gen_dir="$out/tflite-tmp"
find "$gen_dir" -name '*.ts' -print0 | xargs -0 sed -i -E \
  -e "s#(from '\.\.?/[^']*)';#\1.js';#" -e "s#\.js\.js';#.js';#"
if grep -rnE "from '\.\.?/[^']*[^j][^s]';" "$gen_dir"; then
  echo "schemas: some generated imports still lack the .js suffix" >&2; exit 1
fi
mv "$gen_dir" "$out/tflite"
count=$(find "$out/tflite" -name '*.ts' | wc -l)
if [ "$count" -lt 100 ]; then echo "schemas: expected the tflite schema to yield >100 files, got $count" >&2; exit 1; fi
echo "schemas: tflite -> $count TypeScript files in schemas/generated/tflite"

# ONNX: schemas/onnx.proto -> pbjs JSON descriptor -> schemas/generated/onnx/onnx-descriptor.ts.
# pbjs comes from the protobufjs-cli dev dependency; --no-install keeps npx from downloading it.
root="$(cd "$here/.." && pwd)"
if [ ! -x "$root/node_modules/.bin/pbjs" ]; then
  echo "schemas: pbjs not found in node_modules/.bin. Run npm install (protobufjs-cli is a dev dependency)" >&2
  exit 1
fi
(cd "$root" && npx --no-install pbjs -t json --keep-case "$here/onnx.proto") > "$work/onnx.json"
if [ ! -s "$work/onnx.json" ]; then echo "schemas: pbjs wrote an empty descriptor for onnx.proto" >&2; exit 1; fi

# Written into the scratch folder first, so a failed run leaves the committed output untouched.
onnx_ts="$work/onnx-descriptor.ts"
(cd "$root" && node "$here/gen-onnx-descriptor.mjs" "$work/onnx.json" "$onnx_ts")
if [ ! -s "$onnx_ts" ]; then echo "schemas: $onnx_ts is missing or empty" >&2; exit 1; fi
for name in ModelProto GraphProto TensorProto SparseTensorProto TensorProto_DataType; do
  if ! grep -qE "^export const ${name}(Field|Descriptor)? = " "$onnx_ts"; then
    echo "schemas: $onnx_ts does not export $name" >&2; exit 1
  fi
done
rm -rf "$out/onnx"
mkdir -p "$out/onnx"
mv "$onnx_ts" "$out/onnx/onnx-descriptor.ts"
echo "schemas: onnx -> schemas/generated/onnx/onnx-descriptor.ts ($(wc -l < "$out/onnx/onnx-descriptor.ts") lines)"
