#!/usr/bin/env node
// Turns the JSON descriptor that `pbjs -t json --keep-case schemas/onnx.proto` prints into
// schemas/generated/onnx/onnx-descriptor.ts: plain `as const` objects (no const enums) that a
// hand-written protobuf reader can be driven by. Called by schemas/generate.sh.
// Usage: node schemas/gen-onnx-descriptor.mjs <onnx.json> <out.ts>
// Any problem throws, so the process exits non-zero and generate.sh stops.
import { readFileSync, writeFileSync } from 'node:fs';
import protobuf from 'protobufjs';

const [jsonPath, outPath] = process.argv.slice(2);
if (!jsonPath || !outPath) throw new Error('usage: gen-onnx-descriptor.mjs <onnx.json> <out.ts>');

const PACKAGE = 'onnx';
// Wire type of one element of each scalar type (packed lists are always wire type 2).
const SCALAR_WIRE_TYPES = {
  int32: 0, int64: 0, uint32: 0, uint64: 0, sint32: 0, sint64: 0, bool: 0,
  fixed64: 1, sfixed64: 1, double: 1,
  string: 2, bytes: 2,
  fixed32: 5, sfixed32: 5, float: 5,
};

const root = protobuf.Root.fromJSON(JSON.parse(readFileSync(jsonPath, 'utf8')));
root.resolveAll(); // throws on any unresolvable type reference
const pkg = root.lookup(PACKAGE);
if (!(pkg instanceof protobuf.Namespace)) throw new Error(`gen-onnx-descriptor: no package "${PACKAGE}" in ${jsonPath}`);

/** 'TensorProto.Segment' for '.onnx.TensorProto.Segment'. */
function relativeName(type) {
  const prefix = `.${PACKAGE}.`;
  if (!type.fullName.startsWith(prefix)) throw new Error(`gen-onnx-descriptor: ${type.fullName} is outside package ${PACKAGE}`);
  return type.fullName.slice(prefix.length);
}
const identifier = (name) => name.replace(/\./g, '_');
const key = (name) => (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(name) ? name : JSON.stringify(name));

function describeField(messageName, field) {
  const out = { name: field.name, number: field.id };
  if (field.map) throw new Error(`gen-onnx-descriptor: ${messageName}.${field.name}: map fields are not supported`);
  if (field.resolvedType instanceof protobuf.Type) {
    Object.assign(out, { type: 'message', wireType: 2, typeName: relativeName(field.resolvedType) });
  } else if (field.resolvedType instanceof protobuf.Enum) {
    Object.assign(out, { type: 'enum', wireType: 0, typeName: relativeName(field.resolvedType) });
  } else if (field.type in SCALAR_WIRE_TYPES) {
    Object.assign(out, { type: field.type, wireType: SCALAR_WIRE_TYPES[field.type] });
  } else {
    throw new Error(`gen-onnx-descriptor: ${messageName}.${field.name}: unknown type "${field.type}"`);
  }
  out.label = field.repeated ? 'repeated' : field.required ? 'required' : 'optional';
  out.packed = Boolean(field.repeated && field.packed);
  if (field.partOf) out.oneof = field.partOf.name;
  return out;
}

/** One-line TypeScript literal for strings, numbers, booleans, arrays and plain objects. */
function literal(value) {
  if (typeof value === 'string') return `'${value.replace(/[\\']/g, '\\$&')}'`;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `[${value.map(literal).join(', ')}]`;
  if (value && typeof value === 'object') {
    return `{ ${Object.entries(value).map(([k, v]) => `${key(k)}: ${literal(v)}`).join(', ')} }`;
  }
  throw new Error(`gen-onnx-descriptor: cannot write ${String(value)} as a literal`);
}

const sections = [];
const messageNames = [];
const enumNames = [];
const seen = new Set();

function emitEnum(type) {
  const name = relativeName(type);
  const id = identifier(name);
  if (seen.has(id)) throw new Error(`gen-onnx-descriptor: two types map to the identifier ${id}`);
  seen.add(id);
  enumNames.push(name);
  const entries = Object.entries(type.values);
  if (entries.length === 0) throw new Error(`gen-onnx-descriptor: enum ${name} has no values`);
  sections.push([
    `/** Values of enum ${PACKAGE}.${name}. */`,
    `export const ${id} = {`,
    ...entries.map(([k, v]) => `  ${key(k)}: ${v},`),
    '} as const;',
    `export type ${id} = (typeof ${id})[keyof typeof ${id}];`,
  ].join('\n'));
}

function emitMessage(type) {
  const name = relativeName(type);
  const id = identifier(name);
  if (seen.has(id)) throw new Error(`gen-onnx-descriptor: two types map to the identifier ${id}`);
  seen.add(id);
  messageNames.push(name);
  const fields = type.fieldsArray.map((f) => describeField(name, f));
  const numbers = new Set(fields.map((f) => f.number));
  if (numbers.size !== fields.length) throw new Error(`gen-onnx-descriptor: ${name} has duplicate field numbers`);
  const reservedNumbers = [];
  const reservedNames = [];
  for (const r of type.reserved ?? []) {
    if (typeof r === 'string') reservedNames.push(r);
    else reservedNumbers.push([r[0], r[1]]);
  }
  const oneofs = type.oneofsArray.map((o) => o.name);
  sections.push([
    `/** Field numbers of message ${PACKAGE}.${name}. */`,
    `export const ${id}Field = {`,
    ...fields.map((f) => `  ${key(f.name)}: ${f.number},`),
    '} as const;',
    `/** Descriptor of message ${PACKAGE}.${name}, fields in declaration order. */`,
    `export const ${id}Descriptor = {`,
    `  name: '${name}',`,
    '  fields: [',
    ...fields.map((f) => `    ${literal(f)},`),
    '  ],',
    `  oneofs: ${literal(oneofs)},`,
    `  reservedNumbers: ${literal(reservedNumbers)},`,
    `  reservedNames: ${literal(reservedNames)},`,
    '} as const satisfies MessageDescriptor;',
  ].join('\n'));
  for (const nested of type.nestedArray) emitType(nested);
}

function emitType(type) {
  if (type instanceof protobuf.Type) emitMessage(type);
  else if (type instanceof protobuf.Enum) emitEnum(type);
  else if (type instanceof protobuf.Service) throw new Error(`gen-onnx-descriptor: services are not supported (${type.fullName})`);
}

for (const nested of pkg.nestedArray) emitType(nested);

for (const required of ['ModelProto', 'GraphProto', 'TensorProto', 'SparseTensorProto']) {
  if (!messageNames.includes(required)) throw new Error(`gen-onnx-descriptor: message ${required} missing from ${jsonPath}`);
}
if (!enumNames.includes('TensorProto.DataType')) throw new Error(`gen-onnx-descriptor: enum TensorProto.DataType missing from ${jsonPath}`);

const header = `// Generated by schemas/gen-onnx-descriptor.mjs from schemas/onnx.proto (package ${PACKAGE}).
// Do not edit: run \`npm run schemas\`.
/* eslint-disable */

/** Scalar protobuf types; 'message' and 'enum' fields name their type in typeName. */
export type ProtoFieldType =
  | 'double' | 'float' | 'int32' | 'int64' | 'uint32' | 'uint64' | 'sint32' | 'sint64'
  | 'fixed32' | 'fixed64' | 'sfixed32' | 'sfixed64' | 'bool' | 'string' | 'bytes'
  | 'message' | 'enum';

/** Protobuf wire types: 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit. */
export type WireType = 0 | 1 | 2 | 5;

export interface FieldDescriptor {
  readonly name: string;
  readonly number: number;
  readonly type: ProtoFieldType;
  /** Wire type of one unpacked element (a packed list arrives as wire type 2). */
  readonly wireType: WireType;
  /** Message or enum type, relative to the package ('TensorProto.Segment'). */
  readonly typeName?: string;
  readonly label: 'optional' | 'required' | 'repeated';
  /** Declared [packed = true]. Readers must accept both packed and unpacked encodings. */
  readonly packed: boolean;
  readonly oneof?: string;
}

export interface MessageDescriptor {
  /** Relative to the package ('TensorProto.Segment'). */
  readonly name: string;
  readonly fields: readonly FieldDescriptor[];
  readonly oneofs: readonly string[];
  /** Inclusive [from, to] ranges. */
  readonly reservedNumbers: readonly (readonly [number, number])[];
  readonly reservedNames: readonly string[];
}

export const ONNX_PACKAGE = '${PACKAGE}';
`;

const footer = [
  '/** Every message descriptor, by name relative to the package. */',
  'export const onnxMessages = {',
  ...messageNames.map((n) => `  ${key(n)}: ${identifier(n)}Descriptor,`),
  '} as const satisfies Record<string, MessageDescriptor>;',
  '',
  '/** Every enum, by name relative to the package. */',
  'export const onnxEnums = {',
  ...enumNames.map((n) => `  ${key(n)}: ${identifier(n)},`),
  '} as const satisfies Record<string, Readonly<Record<string, number>>>;',
].join('\n');

const text = `${header}\n${sections.join('\n\n')}\n\n${footer}\n`;
writeFileSync(outPath, text);
console.log(`gen-onnx-descriptor: ${messageNames.length} messages, ${enumNames.length} enums -> ${outPath}`);
