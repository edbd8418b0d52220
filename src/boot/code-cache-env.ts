/**
 * The boot loader's switches (cached-boot.ts), in a module of their own: the loader is
 * built as CommonJS and must not pull in anything else.
 */

/** env: when the process exits, write the code cache to this path (the build's producer) */
export const CODE_CACHE_PRODUCE_ENV = 'TSSHIM_CODE_CACHE_OUT';
/** env: print hit | rejected | absent | other-node for the code cache and exit without running (tests, install) */
export const CODE_CACHE_CHECK_ENV = 'TSSHIM_CODE_CACHE_CHECK';

/**
 * Which Node this is, as far as a code cache cares (cached-boot.ts says why V8's own check
 * is not enough). The first line of a cache file: the Node that made it.
 */
export function nodeIdentity(): string {
  return `${process.version} v8-${process.versions.v8} ${process.arch}`;
}
