/**
 * A small JSON Schema (2020-12 subset) validator, enough for docs/audit-schema.json: type
 * (including "integer" and type lists), const, enum, required, properties, additionalProperties
 * (boolean or schema), items, minimum, maximum, minItems, pattern, anyOf, $ref to "#/$defs/...".
 * `strict` also reports properties the schema does not declare, which keeps the documented
 * schema complete even though the published one lets consumers ignore unknown fields.
 */

export interface SchemaError {
  /** JSON pointer of the offending value. */
  path: string;
  message: string;
}

type Schema = boolean | Record<string, unknown>;

export interface ValidateOptions {
  strict?: boolean;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

/** Every error of `value` against `schema` (empty when valid). */
export function validateJsonSchema(value: unknown, schema: Schema, options: ValidateOptions = {}): SchemaError[] {
  const root = schema;
  const errors: SchemaError[] = [];

  const resolve = (ref: string): Schema => {
    if (!ref.startsWith('#/')) throw new Error(`unsupported $ref ${ref}`);
    let node: unknown = root;
    for (const part of ref.slice(2).split('/')) node = (node as Record<string, unknown>)?.[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    if (node === undefined) throw new Error(`unresolved $ref ${ref}`);
    return node as Schema;
  };

  const check = (v: unknown, s: Schema, path: string, out: SchemaError[]): void => {
    if (s === true) return;
    if (s === false) { out.push({ path, message: 'no value allowed here' }); return; }
    if (typeof s.$ref === 'string') { check(v, resolve(s.$ref), path, out); }
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? s.type as string[] : [s.type as string];
      if (!types.some((t) => matchesType(v, t))) {
        out.push({ path, message: `expected ${types.join(' or ')}, found ${typeOf(v)}` });
        return;
      }
    }
    if ('const' in s && JSON.stringify(v) !== JSON.stringify(s.const)) out.push({ path, message: `expected ${JSON.stringify(s.const)}, found ${JSON.stringify(v)}` });
    if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(v))) {
      out.push({ path, message: `expected one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}, found ${JSON.stringify(v)}` });
    }
    if (typeof v === 'number') {
      if (typeof s.minimum === 'number' && v < s.minimum) out.push({ path, message: `expected >= ${s.minimum}, found ${v}` });
      if (typeof s.maximum === 'number' && v > s.maximum) out.push({ path, message: `expected <= ${s.maximum}, found ${v}` });
    }
    if (typeof v === 'string' && typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(v)) {
      out.push({ path, message: `expected to match /${s.pattern}/, found ${JSON.stringify(v)}` });
    }
    if (Array.isArray(s.anyOf)) {
      const branches = (s.anyOf as Schema[]).map((branch) => { const e: SchemaError[] = []; check(v, branch, path, e); return e; });
      if (!branches.some((e) => e.length === 0)) {
        out.push({ path, message: `matches none of anyOf: ${branches.map((e) => e[0]?.message ?? '').join(' | ')}` });
      }
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === 'number' && v.length < s.minItems) out.push({ path, message: `expected at least ${s.minItems} items, found ${v.length}` });
      if (s.items !== undefined) v.forEach((item, i) => check(item, s.items as Schema, `${path}/${i}`, out));
      return;
    }
    if (v !== null && typeof v === 'object') {
      const object = v as Record<string, unknown>;
      const properties = (s.properties ?? {}) as Record<string, Schema>;
      for (const key of (s.required ?? []) as string[]) if (!(key in object)) out.push({ path, message: `missing required property "${key}"` });
      for (const [key, child] of Object.entries(object)) {
        const childPath = `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`;
        if (key in properties) { check(child, properties[key]!, childPath, out); continue; }
        if (s.additionalProperties !== undefined) { check(child, s.additionalProperties as Schema, childPath, out); continue; }
        if (options.strict && s.properties !== undefined) out.push({ path: childPath, message: 'property not declared in the schema' });
      }
    }
  };

  check(value, schema, '', errors);
  return errors;
}
