/**
 * Turns a TOML syntax error into a line, a column and a sentence a person can act on.
 * smol-toml reports where its parser stopped and why in parser terms ("control characters
 * are not allowed in strings" for a string left open at the end of its line); here each of
 * its reasons that a config file can plausibly hit is restated in terms of what the file
 * says, pointing at the start of the construct at fault where that is clearer (the opening
 * quote of an unterminated string). Anything else keeps the parser's reason.
 *
 * Also locates a key in the text, so an error found after parsing (a value of the wrong
 * type) can name its line too.
 */

export interface TomlProblem {
  /** 1-based */
  line: number;
  /** 1-based, in characters */
  column: number;
  message: string;
}

interface ParserError {
  message: string;
  line: number;
  column: number;
}

function isParserError(err: unknown): err is ParserError {
  if (!(err instanceof Error)) return false;
  const e = err as Error & { line?: unknown; column?: unknown };
  return typeof e.line === 'number' && typeof e.column === 'number';
}

/** what smol-toml says, without its "Invalid TOML document: " prefix and code excerpt */
function parserReason(err: Error): string {
  return err.message.split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
}

export function explainTomlError(text: string, err: unknown): TomlProblem | undefined {
  if (!isParserError(err)) return undefined;
  const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  const line = err.line;
  const column = err.column;
  const lineText = lines[line - 1] ?? '';
  const at = lineText[column - 1];
  const reason = parserReason(err as unknown as Error);
  const problem = (message: string, col = column, ln = line): TomlProblem => ({ line: ln, column: col, message });

  switch (reason) {
    case 'control characters are not allowed in strings': {
      if (at === undefined) {
        // the parser ran into the end of the line: the string was never closed
        const open = openStringAt(lineText);
        if (open) return problem(`unterminated string: ${excerpt(lineText.slice(open.index))} must end with ${open.quote} on the same line`, open.index + 1);
        return problem('unterminated string: no closing quote on this line');
      }
      const code = at.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
      return problem(`control character U+${code} inside a string: write it as the escape \\u${code}`);
    }
    case 'unfinished string': {
      const rest = lineText.slice(column - 1);
      const quote = rest.startsWith('"""') ? '"""' : rest.startsWith("'''") ? "'''" : rest[0] === "'" ? "'" : '"';
      const kind = quote.length === 3 ? 'multi-line string' : 'string';
      return problem(`unterminated ${kind}: ${excerpt(rest)} must end with ${quote} before the end of the file`);
    }
    case 'illegal character in key':
    case 'unexpected end of key': {
      const trimmed = lineText.trim();
      if (trimmed.startsWith('[')) {
        const col = lineText.indexOf('[') + 1;
        if (!trimmed.includes(']')) return problem(`table header ${trimmed} is missing its closing "]"`, col);
        return problem(`invalid table header ${trimmed}: write [name] with a name made of letters, digits, "_" and "-"`, col);
      }
      const eq = lineText.indexOf('=');
      if (eq > 0 && /\S\s+\S/.test(lineText.slice(0, eq).trim()) && !/["']/.test(lineText.slice(0, eq))) {
        const spaced = lineText.slice(0, eq).trim();
        return problem(`key "${spaced}" contains a space: remove the space, or put the whole key in quotes`, lineText.search(/\S/) + 1);
      }
      const key = lineText.slice(0, column - 1).trim();
      if (at === undefined) return problem(`key ${quoteKey(key)} has no value: write ${key} = <value>`);
      if (key === '') return problem(`a line must start with a key: write <key> = <value>`);
      return problem(`unexpected ${describeChar(at)} after key ${quoteKey(key)}: write ${key} = <value> (a key with spaces or dots in it must be quoted)`);
    }
    case 'expected end of table array declaration':
      return problem(`table array header ${lineText.trim()} is missing its closing "]]"`, lineText.indexOf('[') + 1);
    case 'trying to redefine an already defined table or value': {
      const trimmed = lineText.trim();
      const defs = definitionsBefore(lines, line - 1);
      if (trimmed.startsWith('[')) {
        const name = trimmed.replace(/^\[+\s*/, '').replace(/\s*\].*$/, '');
        const first = defs.tables.get(name);
        const col = lineText.indexOf('[') + 1;
        if (first) return problem(`table [${name}] is defined twice (first defined on line ${first})`, col);
        return problem(`table [${name}] is already defined earlier in the file (as a value or through a dotted key)`, col);
      }
      const key = keyOf(lineText);
      if (key !== undefined) {
        const full = defs.current ? `${defs.current}.${key}` : key;
        const first = defs.keys.get(full);
        const col = lineText.search(/\S/) + 1;
        if (first) return problem(`key ${quoteKey(full)} is defined twice (first defined on line ${first})`, col);
        return problem(`key ${quoteKey(full)} is already defined earlier in the file`, col);
      }
      return problem('this table or key is already defined earlier in the file');
    }
    case 'invalid value': {
      const value = valueText(lineText.slice(column - 1));
      const key = keyOf(lineText);
      const forKey = key !== undefined ? ` for key ${quoteKey(key)}` : '';
      if (value === '') return problem(`missing value${forKey}: write ${key ?? '<key>'} = <value>`);
      if (/^(True|False|TRUE|FALSE|yes|no|on|off)$/.test(value)) {
        return problem(`invalid value ${value}${forKey}: booleans are written true or false, strings in quotes`);
      }
      if (/^[A-Za-z_/.][\w\-./]*$/.test(value)) {
        return problem(`invalid value ${value}${forKey}: a string must be quoted ("${value}")`);
      }
      return problem(`invalid value ${excerpt(value)}${forKey}`);
    }
    case 'expected comma or end of structure':
      return problem('an array [...] or inline table {...} is not closed: expected "," or its closing bracket');
    case 'each key-value declaration must be followed by an end-of-line': {
      const rest = lineText.slice(column - 1).trim();
      if (lineText.trim().startsWith('[')) return problem(`unexpected ${excerpt(rest)} after the table header: a header is [name] alone on its line`);
      return problem(`unexpected ${excerpt(rest)} after the value: one key = value per line (a comment starts with #)`);
    }
    case 'unrecognised escape sequence': {
      // the parser points at the character after the backslash
      const seq = lineText.slice(column - 2, column);
      return problem(`unknown escape sequence ${seq} in a string: write \\\\ for a backslash, or use a 'literal string'`, column - 1);
    }
    default:
      return problem(reason);
  }
}

/** the line (1-based) where `key` of table `table` ('' = top level) is set, if it is found */
export function locateKey(text: string, table: string, key: string): number | undefined {
  const lines = text.split('\n');
  let current = '';
  for (let i = 0; i < lines.length; i++) {
    const header = headerOf(lines[i]!);
    if (header !== undefined) {
      current = header;
      if (current === (table ? `${table}.${key}` : key)) return i + 1;
      continue;
    }
    const k = keyOf(lines[i]!);
    if (k === undefined) continue;
    const full = current ? `${current}.${k}` : k;
    if (full === (table ? `${table}.${key}` : key)) return i + 1;
  }
  return undefined;
}

/** tables and (table-qualified) keys defined on lines [0, end), with their first line; and the table open at `end` */
function definitionsBefore(lines: string[], end: number): { tables: Map<string, number>; keys: Map<string, number>; current: string } {
  const tables = new Map<string, number>();
  const keys = new Map<string, number>();
  let current = '';
  for (let i = 0; i < end; i++) {
    const header = headerOf(lines[i]!);
    if (header !== undefined) {
      current = header;
      if (!tables.has(header)) tables.set(header, i + 1);
      continue;
    }
    const k = keyOf(lines[i]!);
    if (k === undefined) continue;
    const full = current ? `${current}.${k}` : k;
    if (!keys.has(full)) keys.set(full, i + 1);
    // a dotted key defines its parent tables too
    const parts = full.split('.');
    for (let n = 1; n < parts.length; n++) {
      const parent = parts.slice(0, n).join('.');
      if (!tables.has(parent)) tables.set(parent, i + 1);
    }
  }
  return { tables, keys, current };
}

function headerOf(line: string): string | undefined {
  const m = /^\s*\[\[?\s*([^\]]*?)\s*\]\]?\s*(#.*)?$/.exec(line);
  return m ? m[1]!.replace(/\s*\.\s*/g, '.') : undefined;
}

/** the key of a `key = value` line, dotted parts joined without spaces */
function keyOf(line: string): string | undefined {
  const m = /^\s*([A-Za-z0-9_\-."' ]+?)\s*=/.exec(line);
  if (!m) return undefined;
  return m[1]!.replace(/\s*\.\s*/g, '.');
}

/** where on the line a string opens that the line never closes, and with which quote */
function openStringAt(line: string): { index: number; quote: string } | undefined {
  let open: { index: number; quote: string } | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (open) {
      if (open.quote === '"' && c === '\\') {
        i++;
        continue;
      }
      if (c === open.quote) open = undefined;
      continue;
    }
    if (c === '#') return undefined;
    if (c === '"' || c === "'") open = { index: i, quote: c };
  }
  return open;
}

/** the value part of `rest`, without a trailing comment */
function valueText(rest: string): string {
  return rest.replace(/\s+#.*$/, '').trim();
}

function excerpt(s: string): string {
  const t = s.trim();
  return t.length > 30 ? `${t.slice(0, 30)}…` : t;
}

function quoteKey(key: string): string {
  return `"${key}"`;
}

function describeChar(c: string): string {
  if (c === ' ' || c === '\t') return 'space';
  return c === '"' ? `'"'` : `"${c}"`;
}
