import { configDefaults, defineConfig } from 'vitest/config';

// test/e2e/inside-systemd runs only inside a private systemd, started by
// test/e2e/systemd-driver.test.ts with this variable set
const insideSystemd = process.env.TSSHIM_E2E_INSIDE_SYSTEMD === '1';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: insideSystemd ? configDefaults.exclude : [...configDefaults.exclude, 'test/e2e/inside-systemd/**'],
    // e2e suites drive one private containerd each; running files in parallel on a
    // 2-core machine only adds noise, so files run one after another.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
