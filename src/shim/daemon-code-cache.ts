/**
 * The daemon boot loader's switches (daemon-boot.ts), in a module of their own: the loader
 * is built as CommonJS and must not pull in anything else.
 */

/** env: write the code cache to this path on SIGUSR2, then exit (scripts/build-daemon.mjs) */
export const CODE_CACHE_PRODUCE_ENV = 'TSSHIM_CODE_CACHE_OUT';
/** env: print hit | rejected | absent for the code cache and exit without serving (tests) */
export const CODE_CACHE_CHECK_ENV = 'TSSHIM_CODE_CACHE_CHECK';
