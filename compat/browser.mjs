// browser.mjs opens Meridian preview pages in headless Chromium (driven
// by playwright-core, with the system's Chromium: no browser download),
// waits until each map is idle, reads its pixels back and saves a
// screenshot. It prints a JSON report on stdout and exits 1 when a page
// failed or drew too little (2 on bad usage). edge/compat_test.go runs it.
//
//   PAGES           a JSON array of {"name", "url", "minFraction"}: each page's
//                   name (for the report and its screenshot, <name>.png), URL,
//                   e.g. http://127.0.0.1:8080/api/v3/maps/local/preview?name=public.countries&access_token=…,
//                   and the least fraction of canvas pixels that must differ
//                   from the background (default 0.02) (required)
//   SCREENSHOT_DIR  where the screenshots go (required)
//   CHROMIUM        the browser executable (default: /usr/bin/chromium)
//   TIMEOUT_MS      how long each map may take to become idle (default: 60000)

import {mkdtempSync, readFileSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) usage(`${name} is required`);
    return fallback;
  }
  return v;
}

function usage(msg) {
  process.stderr.write(`browser.mjs: ${msg}\n`);
  process.exit(2);
}

let pages;
try {
  pages = JSON.parse(env('PAGES'));
} catch (err) {
  usage(`PAGES is not JSON: ${err.message}`);
}
if (!Array.isArray(pages) || pages.length === 0 || !pages.every((p) => p && /^[\w-]+$/.test(p.name ?? '') && p.url)) {
  usage('PAGES must be a non-empty array of {"name": word, "url": …}');
}
const screenshotDir = env('SCREENSHOT_DIR');
const executablePath = env('CHROMIUM', '/usr/bin/chromium');
const timeout = Number(env('TIMEOUT_MS', '60000'));

// Never outlive a stuck browser: the caller also kills the process group.
const watchdog = setTimeout(() => {
  process.stderr.write('browser.mjs: watchdog expired\n');
  process.exit(3);
}, pages.length * timeout + 90_000);
watchdog.unref();

// The token stays out of the report.
const redact = (s) => String(s).replace(/access_token=[^&\s"]+/g, 'access_token=…');

const report = {
  ok: false,
  playwright: readVersion('playwright-core'),
  browser: null,
  webgl: null,
  pages: [],
  problems: [],
};

function readVersion(name) {
  try {
    return JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

// Runs in the page once the map is idle: the map's own pixels (the page
// keeps its drawing buffer) compared with the background, and the WebGL
// renderer.
function readPixels() {
  const map = window.__map;
  const src = map.getCanvas();
  const gl = src.getContext('webgl2');
  const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
  const webgl = gl ? {version: gl.getParameter(gl.VERSION), renderer: info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER)} : null;
  const c = document.createElement('canvas');
  c.width = src.width;
  c.height = src.height;
  const ctx = c.getContext('2d');
  ctx.drawImage(src, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  const bg = [0xee, 0xf1, 0xf4]; // the page's background color
  let nonBackground = 0;
  const colors = new Set();
  for (let i = 0; i < d.length; i += 4) {
    const dist = Math.abs(d[i] - bg[0]) + Math.abs(d[i + 1] - bg[1]) + Math.abs(d[i + 2] - bg[2]);
    if (dist > 24) nonBackground++;
    if (colors.size < 5000) colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
  }
  return {webgl, pixels: {width: c.width, height: c.height, nonBackground, fraction: nonBackground / (d.length / 4), distinctColors: colors.size}};
}

// visit opens one page in a fresh tab and reports on it.
async function visit(context, spec) {
  const out = {
    name: spec.name,
    ok: false,
    state: null,
    error: null,
    mapErrors: [],
    features: 0,
    tiles: 0,
    pixels: null,
    pageErrors: [],
    console: [],
    failedRequests: [],
    responses: [],
    screenshot: join(screenshotDir, `${spec.name}.png`),
    problems: [],
  };
  const page = await context.newPage();
  page.on('console', (m) => out.console.length < 50 && out.console.push(redact(`${m.type()}: ${m.text()} ${m.location()?.url ?? ''}`)));
  page.on('pageerror', (e) => out.pageErrors.push(redact(e.message)));
  page.on('requestfailed', (r) => out.failedRequests.push(redact(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`)));
  // Worker requests (MapLibre fetches tiles in its worker) reach the
  // context's listeners, not the page's.
  const onResponse = async (res) => {
    const req = res.request();
    const u = new URL(req.url());
    if (!u.protocol.startsWith('http')) return;
    const headers = await req.allHeaders().catch(() => ({}));
    out.responses.push({
      method: req.method(),
      path: u.pathname,
      status: res.status(),
      bearer: /^Bearer \S+/.test(headers.authorization ?? ''),
      tokenInURL: u.searchParams.has('access_token'),
    });
  };
  context.on('response', onResponse);
  try {
    const res = await page.goto(spec.url, {waitUntil: 'load', timeout});
    if (!res || res.status() !== 200) out.problems.push(`the page answered ${res ? res.status() : 'nothing'}`);
    await page.waitForFunction(() => window.__mapIdle === true || window.__preview?.state === 'error', null, {timeout, polling: 100});
    const st = await page.evaluate(() => {
      const p = window.__preview;
      return {state: p.state, error: p.error, errors: p.errors, features: p.features, tiles: p.tiles};
    });
    Object.assign(out, {state: st.state, error: st.error && redact(st.error), mapErrors: st.errors.map(redact), features: st.features, tiles: st.tiles});
    if (st.state === 'idle') {
      const px = await page.evaluate(readPixels);
      report.webgl ??= px.webgl;
      out.pixels = px.pixels;
    }
    await page.screenshot({path: out.screenshot});
  } catch (err) {
    out.problems.push(redact(err?.message ?? err));
  } finally {
    context.off('response', onResponse);
    await page.close().catch(() => {});
  }
  const minFraction = spec.minFraction ?? 0.02;
  if (out.state !== 'idle') out.problems.push(`the page ended in state ${out.state}: ${out.error}`);
  if (out.mapErrors.length) out.problems.push('the map reported errors');
  if (out.pageErrors.length) out.problems.push('the page threw');
  if (out.pixels && out.pixels.fraction < minFraction) {
    out.problems.push(`only ${(out.pixels.fraction * 100).toFixed(2)}% of the canvas differs from the background, want ${minFraction * 100}%`);
  }
  out.ok = out.problems.length === 0;
  return out;
}

const userDataDir = mkdtempSync(join(tmpdir(), 'meridian-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: {width: 1024, height: 640},
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // WebGL without a GPU: Chromium's software renderer (SwiftShader),
      // which current Chromium only uses for WebGL when told to.
      '--enable-unsafe-swiftshader',
    ],
    timeout: 60_000,
  });
  report.browser = context.browser()?.version() ?? null;
  for (const spec of pages) {
    const out = await visit(context, spec);
    report.pages.push(out);
    if (!out.ok) report.problems.push(`${spec.name}: ${out.problems.join('; ')}`);
  }
} catch (err) {
  report.problems.push(redact(`browser.mjs: ${err?.message ?? err}`));
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, {recursive: true, force: true});
}

report.ok = report.problems.length === 0 && report.pages.length === pages.length;
process.stdout.write(JSON.stringify(report, null, 1) + '\n');
process.exitCode = report.ok ? 0 : 1;
