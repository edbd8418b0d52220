/**
 * Node built-ins that cost milliseconds to load, loaded on first use.
 *
 * A static `import ... from 'node:net'` anywhere in the daemon bundle loads `net` (and with
 * it all of Node's streams) while the bundle is evaluated, on every shim's boot, even when
 * only a terminal or a binary logger would ever use it. Modules that need `net`,
 * `child_process` or `stream` only on some paths get them from here instead, when those
 * paths run. A component test checks that a daemon serving a native container's whole
 * life never loads them.
 *
 * `child_process` additionally goes through childProcess(), so that whoever must see every
 * spawn through it (the Reaper, which must never reap libuv's children) is told the
 * moment the module is first loaded, before anything can spawn with it.
 */
type Builtins = {
  'node:net': typeof import('node:net');
  'node:child_process': typeof import('node:child_process');
  'node:stream': typeof import('node:stream');
};

type GetBuiltin = (id: string) => unknown;

/** The module, loaded now if nobody has loaded it yet. */
export function builtin<K extends keyof Builtins>(id: K): Builtins[K] {
  if (id === 'node:child_process') return childProcess() as Builtins[K];
  return load(id) as Builtins[K];
}

function load(id: string): unknown {
  // Node >= 20.16 (package.json engines). Not createRequire: importing node:module would
  // load Node's ES module loader at boot, the kind of cost this module exists to avoid.
  const get = (process as unknown as { getBuiltinModule?: GetBuiltin }).getBuiltinModule;
  if (typeof get !== 'function') throw new Error(`tsshim needs Node >= 20.16 (process.getBuiltinModule); this is ${process.version}`);
  return get.call(process, id);
}

const onChildProcessLoad: Array<(cp: typeof import('node:child_process')) => void> = [];
let childProcessSeen = false;

/** node:child_process, telling whenChildProcessLoaded() subscribers first. */
export function childProcess(): typeof import('node:child_process') {
  const cp = load('node:child_process') as typeof import('node:child_process');
  if (!childProcessSeen) {
    childProcessSeen = true;
    for (const cb of onChildProcessLoad.splice(0)) cb(cp);
  }
  return cp;
}

/**
 * Runs cb with node:child_process as soon as it is loaded: now if it already is (by anyone:
 * Node records every built-in it has loaded), else from the first childProcess() call.
 */
export function whenChildProcessLoaded(cb: (cp: typeof import('node:child_process')) => void): void {
  if (childProcessSeen || isLoaded('child_process')) {
    cb(childProcess());
    return;
  }
  onChildProcessLoad.push(cb);
}

/** true if Node has loaded the built-in `name` (without the node: prefix) */
export function isLoaded(name: string): boolean {
  const list = (process as unknown as { moduleLoadList?: readonly string[] }).moduleLoadList;
  // without the list, assume loaded: callers then load it themselves, which is always safe
  return list ? list.includes(`NativeModule ${name}`) : true;
}
