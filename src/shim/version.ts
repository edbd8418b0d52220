export const SHIM_VERSION = '0.1.0';
