/**
 * Kata Containers' own `configuration.toml`, for the keys that map onto `[kata]`: a node that
 * already has Kata's kernel, guest image and hypervisor settings points tsshim at that file
 * instead of repeating them. Only `[hypervisor.qemu]` (or the first `[hypervisor.*]` table)
 * is read; Kata's other sections describe its own runtime and have no meaning here.
 */
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { invalidArgument } from '../../core/errors.js';
import type { KataConfig, KataHypervisorName } from '../../shim/config.js';

export type KataFileSettings = Partial<
  Pick<KataConfig, 'hypervisor' | 'hypervisorPath' | 'kernel' | 'initrd' | 'image' | 'memoryMiB' | 'vcpus' | 'kernelParams' | 'virtiofsd'>
>;

const HYPERVISOR_TABLES: Record<string, KataHypervisorName> = {
  qemu: 'qemu',
  clh: 'cloud-hypervisor',
  firecracker: 'firecracker',
};

export function readKataConfiguration(file: string): KataFileSettings {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw invalidArgument(`kata configuration ${file}: ${(err as Error).message.split('\n')[0]}`, err);
  }
  const tables = (doc.hypervisor ?? {}) as Record<string, Record<string, unknown>>;
  const name = 'qemu' in tables ? 'qemu' : Object.keys(tables)[0];
  if (name === undefined) return {};
  const t = tables[name]!;
  const out: KataFileSettings = {};
  const hv = HYPERVISOR_TABLES[name];
  if (hv === undefined) throw invalidArgument(`kata configuration ${file}: [hypervisor.${name}] names no hypervisor tsshim knows (qemu, clh, firecracker)`);
  out.hypervisor = hv;
  const str = (k: string): string | undefined => {
    const v = t[k];
    if (v === undefined || v === '') return undefined;
    if (typeof v !== 'string') throw invalidArgument(`kata configuration ${file}: hypervisor.${name}.${k} must be a string`);
    return v;
  };
  const num = (k: string): number | undefined => {
    const v = t[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
      throw invalidArgument(`kata configuration ${file}: hypervisor.${name}.${k} must be a positive whole number`);
    }
    return v;
  };
  out.hypervisorPath = str('path');
  out.kernel = str('kernel');
  out.initrd = str('initrd');
  out.image = str('image');
  out.virtiofsd = str('virtio_fs_daemon');
  out.memoryMiB = num('default_memory');
  out.vcpus = num('default_vcpus');
  const params = str('kernel_params');
  if (params !== undefined) out.kernelParams = params.split(/\s+/).filter(Boolean);
  for (const k of Object.keys(out) as Array<keyof KataFileSettings>) if (out[k] === undefined) delete out[k];
  return out;
}
