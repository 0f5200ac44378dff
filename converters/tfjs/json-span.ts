/**
 * Finds where a top-level key's value sits in JSON text, so a writer can replace that value and
 * leave every other byte of the file as it was (key order, spacing, number spellings). The text
 * must already have passed JSON.parse. Browser-safe.
 */

export interface TextSpan {
  start: number;
  end: number;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

/** End (exclusive) of the string starting at the quote at `i`. */
function skipString(text: string, i: number): number {
  for (i++; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5c) i++; // backslash: skip the escaped character
    else if (c === 0x22) return i + 1;
  }
  return i;
}

/** End (exclusive) of the JSON value starting at `i`. */
function skipValue(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c === 0x22) return skipString(text, i);
  if (c === 0x7b || c === 0x5b) {
    let depth = 0;
    for (; i < text.length; i++) {
      const d = text.charCodeAt(i);
      if (d === 0x22) { i = skipString(text, i) - 1; continue; }
      if (d === 0x7b || d === 0x5b) depth++;
      else if (d === 0x7d || d === 0x5d) { depth--; if (depth === 0) return i + 1; }
    }
    return i;
  }
  while (i < text.length && !/[\s,}\]]/.test(text[i]!)) i++;
  return i;
}

/**
 * Span of the value of top-level `key` in the object `text`; the last one when the key repeats
 * (as JSON.parse keeps the last). Null when the key is absent or the text is not an object.
 */
export function topLevelValueSpan(text: string, key: string): TextSpan | null {
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) === 0xfeff) i = skipSpace(text, i + 1);
  if (text[i] !== '{') return null;
  i = skipSpace(text, i + 1);
  let found: TextSpan | null = null;
  while (i < text.length && text[i] !== '}') {
    const keyEnd = skipString(text, i);
    const name = JSON.parse(text.slice(i, keyEnd)) as string;
    i = skipSpace(text, keyEnd);
    i = skipSpace(text, i + 1); // ':'
    const end = skipValue(text, i);
    if (name === key) found = { start: i, end };
    i = skipSpace(text, end);
    if (text[i] === ',') i = skipSpace(text, i + 1);
  }
  return found;
}
