/**
 * The project's schemas (schemas/tflite.fbs, schemas/onnx.proto) must declare the formats exactly as the
 * official definitions in ../shared/reference do: the only allowed differences are comments and
 * whitespace. Also checks that the generated ONNX descriptor agrees with schemas/onnx.proto.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  GraphProtoField, SparseTensorProtoField, TensorProtoField, TensorProto_DataType,
  onnxEnums, onnxMessages, type MessageDescriptor,
} from '../schemas/generated/onnx/onnx-descriptor.js';

/** Compiled to dist/test/, so the repository root is two folders up. */
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const referenceDir = resolve(repoRoot, '..', 'shared', 'reference');
const hasReference = existsSync(referenceDir);
const skipReason = `official reference schemas not found at ${referenceDir} ` +
  '(expected a shared/ folder beside the repository); skipping the comparison';

const PAIRS = [
  { project: 'schemas/tflite.fbs', reference: 'tflite_schema.fbs' },
  { project: 'schemas/onnx.proto', reference: 'onnx.proto' },
] as const;

export interface Token {
  text: string;
  line: number;
}

/**
 * Splits a .fbs or .proto source into tokens, dropping `//` and `/* *\/` comments and whitespace.
 * String literals are one token; words (identifiers, numbers, dotted names) are one token; any
 * other character is a token of its own.
 */
export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (c === '\n') { line++; i++; continue; }
    if (/\s/.test(c)) { i++; continue; }
    if (source.startsWith('//', i)) {
      while (i < source.length && source[i] !== '\n') i++;
      continue;
    }
    if (source.startsWith('/*', i)) {
      const end = source.indexOf('*/', i + 2);
      if (end < 0) throw new Error(`unterminated block comment starting on line ${line}`);
      for (let k = i; k < end; k++) if (source[k] === '\n') line++;
      i = end + 2;
      continue;
    }
    if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < source.length && source[j] !== c) {
        if (source[j] === '\n') throw new Error(`unterminated string starting on line ${line}`);
        j += source[j] === '\\' ? 2 : 1;
      }
      if (j >= source.length) throw new Error(`unterminated string starting on line ${line}`);
      tokens.push({ text: source.slice(i, j + 1), line });
      i = j + 1;
      continue;
    }
    const word = /^[A-Za-z0-9_.]+/.exec(source.slice(i, i + 256));
    const text = word ? word[0] : c;
    tokens.push({ text, line });
    i += text.length;
  }
  return tokens;
}

/**
 * First difference between two token streams, or undefined when they are identical. The message names
 * the token index and the line of the difference in both files.
 */
export function compareTokens(project: Token[], reference: Token[], projectName = 'project', referenceName = 'reference'): string | undefined {
  const n = Math.min(project.length, reference.length);
  for (let k = 0; k < n; k++) {
    if (project[k].text !== reference[k].text) {
      return `token ${k}: ${projectName} line ${project[k].line} has ${JSON.stringify(project[k].text)}, ` +
        `${referenceName} line ${reference[k].line} has ${JSON.stringify(reference[k].text)}`;
    }
  }
  if (project.length !== reference.length) {
    const longer = project.length > reference.length ? project : reference;
    const which = longer === project ? projectName : referenceName;
    return `token ${n}: ${which} continues at line ${longer[n].line} with ${JSON.stringify(longer[n].text)} ` +
      `after the other file ends (${project.length} vs ${reference.length} tokens)`;
  }
  return undefined;
}

const readProject = (path: string) => readFileSync(join(repoRoot, path), 'utf8');
const readReference = (name: string) => readFileSync(join(referenceDir, name), 'utf8');

for (const { project, reference } of PAIRS) {
  test(`${project} matches the official ${reference} apart from comments and whitespace`, (t) => {
    if (!hasReference) { t.skip(skipReason); return; }
    const projectTokens = tokenize(readProject(project));
    const referenceTokens = tokenize(readReference(reference));
    assert.ok(referenceTokens.length > 500, `${reference} yielded only ${referenceTokens.length} tokens`);
    const difference = compareTokens(projectTokens, referenceTokens, project, reference);
    assert.equal(difference, undefined, `${project} differs from ${reference}: ${difference}`);
  });
}

test('the schema comparison reports a changed field number or enum value with its line', (t) => {
  if (!hasReference) { t.skip(skipReason); return; }
  const cases = [
    { project: 'schemas/onnx.proto', reference: 'onnx.proto', from: 'optional int32 data_type = 2;', to: 'optional int32 data_type = 3;', expected: '"3"' },
    { project: 'schemas/tflite.fbs', reference: 'tflite_schema.fbs', from: '  INT8 = 9,', to: '  INT8 = 10,', expected: '"10"' },
  ];
  for (const { project, reference, from, to, expected } of cases) {
    const source = readProject(project);
    assert.equal(source.split(from).length, 2, `${project} should contain "${from}" exactly once`);
    const mutated = source.replace(from, to);
    const mutatedLine = source.slice(0, source.indexOf(from)).split('\n').length;
    const difference = compareTokens(tokenize(mutated), tokenize(readReference(reference)), 'mutated', reference);
    assert.ok(difference, `changing "${from}" to "${to}" in a copy of ${project} went unnoticed`);
    assert.match(difference, new RegExp(`mutated line ${mutatedLine} has ${expected}`));
    assert.match(difference, new RegExp(`${reference.replace('.', '\\.')} line \\d+ has`));
  }
  // A dropped statement at the end is reported too.
  const onnx = tokenize(readProject('schemas/onnx.proto'));
  assert.match(compareTokens(onnx.slice(0, -3), onnx) ?? '', /reference continues at line \d+/);
});

test('comments, strings and whitespace are handled by the tokenizer', () => {
  const a = tokenize('message A { // x = 1;\n  optional string s = 1 [default = "a // b"]; /* y\n z */ }');
  const b = tokenize('message A {\noptional string s=1[default="a // b"];}');
  assert.equal(compareTokens(a, b), undefined);
  assert.deepEqual(a.map((token) => token.text).slice(-6), ['default', '=', '"a // b"', ']', ';', '}']);
  assert.equal(a[a.length - 1].line, 3, 'line numbers count the newlines inside block comments');
  assert.match(compareTokens(a, tokenize('message A { optional string s = 2; }')) ?? '', /line 2 has "1", reference line 1 has "2"/);
});

// ---- the generated ONNX descriptor -------------------------------------------------------------

interface ParsedField { name: string; number: number; label: string; type: string; packed: boolean; oneof?: string }

/** Messages (with their fields in order) and enums (with their values) of a .proto token stream. */
function parseProto(tokens: Token[]) {
  const messages = new Map<string, ParsedField[]>();
  const enums = new Map<string, Record<string, number>>();
  const scopes: { kind: string; name: string }[] = [];
  // Oneofs do not open a naming scope: their fields belong to the enclosing message.
  const scopeName = () => scopes.filter((s) => s.kind !== 'oneof').map((s) => s.name).join('.');
  const fullName = (name: string) => (scopes.length ? `${scopeName()}.${name}` : name);
  const at = (k: number) => tokens[k]?.text;
  const fail = (k: number, what: string) => { throw new Error(`line ${tokens[k]?.line}: ${what}, found ${at(k)}`); };
  let k = 0;
  while (k < tokens.length) {
    const text = at(k);
    if ((text === 'message' || text === 'enum' || text === 'oneof') && at(k + 2) === '{') {
      if (text === 'message') messages.set(fullName(at(k + 1)), []);
      if (text === 'enum') enums.set(fullName(at(k + 1)), {});
      scopes.push({ kind: text, name: at(k + 1) });
      k += 3;
    } else if (text === '}') {
      if (!scopes.pop()) fail(k, 'unbalanced }');
      k++;
    } else if (text === ';') {
      k++;
    } else if (['syntax', 'package', 'option', 'reserved', 'import'].includes(text)) {
      while (at(k) !== ';') { if (k >= tokens.length) fail(k, 'missing ;'); k++; }
    } else {
      const scope = scopes[scopes.length - 1];
      if (!scope) fail(k, 'unexpected top-level token');
      if (scope.kind === 'enum') {
        const negative = at(k + 2) === '-';
        const value = Number(at(k + (negative ? 3 : 2)));
        if (at(k + 1) !== '=' || !Number.isInteger(value)) fail(k, 'expected NAME = value');
        enums.get(scopeName())![text] = negative ? -value : value;
        k += negative ? 4 : 3;
      } else {
        const labelled = ['optional', 'repeated', 'required'].includes(text);
        const label = labelled ? text : 'optional';
        const type = at(k + (labelled ? 1 : 0));
        const name = at(k + (labelled ? 2 : 1));
        k += labelled ? 3 : 2;
        if (at(k) !== '=') fail(k, 'expected = after a field name');
        const number = Number(at(k + 1));
        k += 2;
        let packed = false;
        if (at(k) === '[') {
          const close = tokens.findIndex((token, index) => index > k && token.text === ']');
          const options = tokens.slice(k + 1, close).map((token) => token.text).join(' ');
          packed = /\bpacked = true\b/.test(options);
          k = close + 1;
        }
        if (at(k) !== ';') fail(k, 'expected ; after a field');
        const field: ParsedField = { name, number, label, type, packed };
        if (scope.kind === 'oneof') field.oneof = scope.name;
        messages.get(scopeName())!.push(field);
      }
    }
  }
  if (scopes.length) throw new Error(`unclosed ${scopes.map((s) => s.name).join('.')}`);
  return { messages, enums };
}

test('the generated ONNX descriptor has the field numbers prunepack relies on', () => {
  assert.deepEqual(
    [TensorProtoField.dims, TensorProtoField.data_type, TensorProtoField.raw_data, TensorProtoField.external_data, TensorProtoField.data_location],
    [1, 2, 9, 13, 14]);
  assert.deepEqual([SparseTensorProtoField.values, SparseTensorProtoField.indices, SparseTensorProtoField.dims], [1, 2, 3]);
  assert.equal(GraphProtoField.sparse_initializer, 15);
  const sparse = onnxMessages.GraphProto.fields.find((f) => f.name === 'sparse_initializer');
  assert.deepEqual(sparse && { number: sparse.number, label: sparse.label, typeName: sparse.typeName },
    { number: 15, label: 'repeated', typeName: 'SparseTensorProto' });
  const floatData = onnxMessages.TensorProto.fields.find((f) => f.name === 'float_data');
  assert.deepEqual(floatData && [floatData.packed, floatData.wireType], [true, 5]);
});

test('the generated TensorProto.DataType has every value of the official onnx.proto', (t) => {
  if (!hasReference) { t.skip(skipReason); return; }
  const reference = parseProto(tokenize(readReference('onnx.proto'))).enums.get('TensorProto.DataType');
  assert.ok(reference && Object.keys(reference).length >= 27, 'TensorProto.DataType not found in the reference');
  assert.deepEqual(Object.entries(TensorProto_DataType), Object.entries(reference));
});

test('the generated ONNX descriptor agrees with schemas/onnx.proto (regenerate with npm run schemas)', () => {
  const { messages, enums } = parseProto(tokenize(readProject('schemas/onnx.proto')));
  const generated: Record<string, MessageDescriptor> = onnxMessages;
  assert.deepEqual(Object.keys(generated).sort(), [...messages.keys()].sort());
  for (const [name, fields] of messages) {
    const actual = generated[name].fields.map((f) => {
      // The proto names a type relative to its scope; the descriptor names it from the package.
      const type = f.typeName ? f.typeName.split('.').pop()! : f.type;
      return { name: f.name, number: f.number, label: f.label, type, packed: f.packed, ...(f.oneof ? { oneof: f.oneof } : {}) };
    });
    const expected = fields.map((f) => ({ ...f, type: f.type.split('.').pop()! }));
    assert.deepEqual(actual, expected, `message ${name}`);
  }
  const generatedEnums: Record<string, Readonly<Record<string, number>>> = onnxEnums;
  assert.deepEqual(Object.keys(generatedEnums).sort(), [...enums.keys()].sort());
  for (const [name, values] of enums) assert.deepEqual(Object.entries(generatedEnums[name]), Object.entries(values), `enum ${name}`);
});
