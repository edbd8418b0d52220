/**
 * containerd's identifier rule: alphanumerics separated by single '.', '_' or '-',
 * at most 76 characters. Ids and namespaces become path components (sockets, runtime
 * roots, bundle paths), so anything else is refused before it reaches the filesystem.
 */
import { invalidArgument } from './errors.js';

const MAX_LENGTH = 76;
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;

export function validateId(id: string, what = 'identifier'): void {
  if (!id) throw invalidArgument(`${what} must not be empty`);
  if (id.length > MAX_LENGTH) throw invalidArgument(`${what} "${id}" is longer than ${MAX_LENGTH} characters`);
  if (!IDENTIFIER.test(id)) {
    throw invalidArgument(`${what} "${id}" must match ${IDENTIFIER.source}`);
  }
}
