/**
 * `containerd-shim-tsshim-v2 check [--config <toml>] [--json]`: whether this host can run each
 * backend, and why not (like `kata-runtime check`). Every requirement is one result, OK, WARN
 * (works, with a caveat) or FAIL (this backend cannot run), with one line saying why. A backend
 * can run when neither its own section nor the common one has a FAIL; the exit status is 0
 * when the default backend (the binary's alias, else the config's `backend`) can run, 1 when
 * it cannot, 2 for a bad command line or config.
 *
 * The checks only read: what they try (a sandbox booted by runsc, a tiny firmware booted by
 * QEMU, a tap device and tc rules in a throwaway network namespace) runs in scratch
 * directories and namespaces that are gone when the probe ends, each under a deadline.
 * The requirements live in host-check-rules.ts, the I/O in host-check-probes.ts.
 */
import type { BackendName, ShimConfig } from './config.js';
import type { HostProbes } from './host-check-probes.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';
/** `common`: requirements of every backend */
export type CheckSection = 'common' | BackendName;

export interface CheckResult {
  backend: CheckSection;
  /** the requirement, short ("cgroups", "guest kernel") */
  name: string;
  status: CheckStatus;
  /** one line: what was found and, when not OK, what it means */
  detail: string;
}

export const CHECK_SECTIONS: readonly CheckSection[] = ['common', 'native', 'runc', 'crun', 'gvisor', 'kata'];

export interface CheckReport {
  config: string;
  defaultBackend: BackendName;
  results: CheckResult[];
}

/** the FAILs that keep `backend` from running here (its own and the common ones) */
export function blockers(results: readonly CheckResult[], backend: BackendName): CheckResult[] {
  return results.filter((r) => r.status === 'fail' && (r.backend === backend || r.backend === 'common'));
}

export function canRun(results: readonly CheckResult[], backend: BackendName): boolean {
  return blockers(results, backend).length === 0;
}

/** 0 when the default backend can run here, 1 otherwise */
export function exitStatusOf(report: CheckReport): 0 | 1 {
  return canRun(report.results, report.defaultBackend) ? 0 : 1;
}

const LABEL: Record<CheckStatus, string> = { ok: 'OK', warn: 'WARN', fail: 'FAIL' };

function verdict(results: readonly CheckResult[], backend: BackendName): string {
  const b = blockers(results, backend);
  if (b.length > 0) return `cannot run here (${b.map((r) => (r.backend === 'common' ? `common: ${r.name}` : r.name)).join(', ')})`;
  const warns = results.filter((r) => r.backend === backend && r.status === 'warn');
  return warns.length > 0 ? `can run here, with ${warns.length === 1 ? 'a warning' : `${warns.length} warnings`}` : 'can run here';
}

/** the text an operator reads: one section per backend, one line per requirement */
export function formatText(report: CheckReport): string {
  const width = Math.max(12, ...report.results.map((r) => r.name.length));
  const lines: string[] = [`tsshim check (config: ${report.config}; default backend: ${report.defaultBackend})`];
  for (const section of CHECK_SECTIONS) {
    const rows = report.results.filter((r) => r.backend === section);
    if (rows.length === 0 && section === 'common') continue;
    lines.push('');
    lines.push(section === 'common' ? 'common (every backend)' : `${section}: ${verdict(report.results, section)}`);
    for (const r of rows) lines.push(`  ${LABEL[r.status].padEnd(4)}  ${r.name.padEnd(width)}  ${r.detail}`);
  }
  lines.push('');
  const ok = canRun(report.results, report.defaultBackend);
  lines.push(`default backend ${report.defaultBackend}: ${ok ? 'can run here' : 'cannot run here'}`);
  return `${lines.join('\n')}\n`;
}

/** for machines: every result, and the verdict per backend */
export function formatJson(report: CheckReport): string {
  const backends = Object.fromEntries(
    CHECK_SECTIONS.filter((s): s is BackendName => s !== 'common').map((b) => [b, { canRun: canRun(report.results, b), blockers: blockers(report.results, b).map((r) => r.name) }]),
  );
  return `${JSON.stringify({ config: report.config, defaultBackend: report.defaultBackend, exitStatus: exitStatusOf(report), backends, results: report.results }, null, 2)}\n`;
}

export interface CheckOptions {
  configPath?: string;
  json: boolean;
}

/** `check`'s own arguments (after the action): `--config <toml>`, `--config=<toml>`, `--json` */
export function parseCheckArgs(rest: readonly string[]): CheckOptions | { error: string } | { help: true } {
  const o: CheckOptions = { json: false };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === '--json' || a === '-json') o.json = true;
    else if (a === '--help' || a === '-h' || a === '-help') return { help: true };
    else if (a === '--config' || a === '-config') {
      const v = rest[++i];
      if (!v) return { error: '--config needs a file' };
      o.configPath = v;
    } else if (/^--?config=/.test(a)) o.configPath = a.slice(a.indexOf('=') + 1);
    else return { error: `unknown argument "${a}"` };
  }
  return o;
}

export const CHECK_USAGE = `usage: containerd-shim-tsshim-v2 check [--config <toml>] [--json]
  Checks, backend by backend, whether this host can run it. Exit status: 0 when the default
  backend can run here, 1 when it cannot, 2 for a bad command line or config.
`;

/** runs every check (backends in parallel, each probe under its own deadline) */
export async function collectReport(config: ShimConfig, defaultBackend: BackendName, probes: HostProbes): Promise<CheckReport> {
  const rules = await import('./host-check-rules.js');
  const sections = await Promise.all([
    rules.commonChecks(config, probes),
    rules.nativeChecks(config, probes),
    rules.runcLikeChecks('runc', config, probes),
    rules.runcLikeChecks('crun', config, probes),
    rules.gvisorChecks(config, probes),
    rules.kataChecks(config, probes),
  ]);
  return { config: config.source, defaultBackend, results: sections.flat() };
}

/** the `check` action: text (or JSON) on stdout and the exit status */
export async function runCheck(rest: readonly string[], argv0: string): Promise<{ out: string; code: number }> {
  const parsed = parseCheckArgs(rest);
  if ('help' in parsed) return { out: CHECK_USAGE, code: 0 };
  if ('error' in parsed) return { out: `tsshim check: ${parsed.error}\n${CHECK_USAGE}`, code: 2 };
  const { loadConfig, DEFAULT_CONFIG_PATH } = await import('./config.js');
  const { aliasFromBinary } = await import('./backend-registry.js');
  let config: ShimConfig;
  try {
    config = loadConfig({ path: parsed.configPath });
  } catch (err) {
    return { out: `tsshim check: ${(err as Error).message}\n`, code: 2 };
  }
  const { realProbes } = await import('./host-check-probes.js');
  if (config.source === 'defaults') config.source = `defaults (no ${DEFAULT_CONFIG_PATH})`;
  const report = await collectReport(config, aliasFromBinary(argv0) ?? config.backend, realProbes());
  return { out: parsed.json ? formatJson(report) : formatText(report), code: exitStatusOf(report) };
}
