/**
 * The boot loader's switches (cached-boot.ts), in a module of their own: the loader is
 * built as CommonJS and must not pull in anything else.
 */

/** env: when the process exits, write the code cache to this path (the build's producer) */
export const CODE_CACHE_PRODUCE_ENV = 'TSSHIM_CODE_CACHE_OUT';
/** env: print hit | rejected | absent for the code cache and exit without running (tests) */
export const CODE_CACHE_CHECK_ENV = 'TSSHIM_CODE_CACHE_CHECK';
