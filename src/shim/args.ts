/**
 * The command line containerd gives a shim, in Go `flag` syntax: one or two dashes,
 * `-flag value` or `-flag=value`, bare booleans, parsing stops at the first non-flag
 * (the action). Unknown flags are kept, not fatal: newer containerd versions add some.
 */
export interface ShimArgs {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  info: boolean;
  action: string;
  rest: string[];
  unknown: Record<string, string | true>;
}

const BOOLEAN_FLAGS = new Set(['debug', 'v', 'version', 'info', 'systemd-cgroup']);
const VALUE_FLAGS: Record<string, keyof ShimArgs> = {
  namespace: 'namespace',
  address: 'address',
  'publish-binary': 'publishBinary',
  id: 'id',
  bundle: 'bundle',
  socket: 'socket',
};

export function parseArgs(argv: string[]): ShimArgs {
  const out: ShimArgs = {
    namespace: '',
    address: '',
    publishBinary: '',
    id: '',
    bundle: '',
    socket: '',
    debug: false,
    version: false,
    info: false,
    action: '',
    rest: [],
    unknown: {},
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    if (BOOLEAN_FLAGS.has(name)) {
      const on = inline === undefined ? true : inline !== 'false' && inline !== '0';
      if (name === 'debug') out.debug = on;
      else if (name === 'v' || name === 'version') out.version = on;
      else if (name === 'info') out.info = on;
      else out.unknown[name] = true;
      continue;
    }
    const value = inline ?? argv[++i] ?? '';
    const key = VALUE_FLAGS[name];
    if (key) (out as unknown as Record<string, unknown>)[key] = value;
    else out.unknown[name] = value;
  }
  out.action = argv[i] ?? '';
  out.rest = argv.slice(i + 1);
  return out;
}
