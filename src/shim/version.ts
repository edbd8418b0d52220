/** package.json's version, put in by the build (esbuild define in scripts/build*.mjs) */
declare const TSSHIM_BUILD_VERSION: string | undefined;

/**
 * The shim's version (`-v`, `-info`): package.json's, so that a release installed under
 * PREFIX/lib/tsshim/<version> reports the version it was installed as. Unbundled code
 * (tests running src/ directly) has no build; it reports "dev".
 */
export const SHIM_VERSION: string = typeof TSSHIM_BUILD_VERSION === 'string' ? TSSHIM_BUILD_VERSION : 'dev';
