// fetchmap-page.mjs: a plain customer page that calls @deck.gl/carto's
// fetchMap and draws the layers with deck.gl (web/examples/fetchmap.js),
// served by a server of its own on loopback (another origin) so the
// calls to Meridian are cross-origin as in a customer's app. loaders.gl
// loads its tile parsers' workers from unpkg.com; no CDN is reachable
// here, so those URLs are answered from web/node_modules, as the CDN
// would. Run by the Go test edge/fetchmap_test.go.
//
//   API_BASE_URL  e.g. http://127.0.0.1:8080/api (required)
//   MAPS          JSON array of {name, id} (required)
//   SCREENSHOT_DIR  where fetchmap-page-<name>.png go (required)
//   CHROMIUM      the browser (default /usr/bin/chromium)
//
// Prints {maps: {name: {ok, layers, drawn, error, requests}}}.

import {mkdtempSync, readFileSync, rmSync, existsSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join, dirname} from 'node:path';
import {fileURLToPath} from 'node:url';
import http from 'node:http';
import {chromium} from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const web = join(here, '..', 'web');
const bundle = readFileSync(join(web, 'examples', 'dist', 'fetchmap.js'));
const api = process.env.API_BASE_URL;
// The customer app: a server of its own on loopback, another origin than
// Meridian's. (Chromium's Local Network Access refuses calls from a page
// it does not know to be on loopback, such as a routed one.)
const app = http.createServer((req, res) => {
  const isJS = req.url.startsWith('/fetchmap.js');
  res.writeHead(200, {'Content-Type': isJS ? 'text/javascript' : 'text/html'});
  res.end(isJS ? bundle : page);
});
await new Promise((r) => app.listen(0, '127.0.0.1', r));
const APP = `http://localhost:${app.address().port}`;
const maps = JSON.parse(process.env.MAPS || '[]');
const shots = process.env.SCREENSHOT_DIR;
const page = `<!doctype html><html><head><meta charset="utf-8"><title>fetchMap</title>
<style>html,body{margin:0;height:100%}#map{width:100%;height:100%;display:block}#status{position:absolute;top:4px;left:4px;font:12px sans-serif}</style>
</head><body><canvas id="map"></canvas><div id="status">loading</div><script type="module" src="/fetchmap.js"></script></body></html>`;

const watchdog = setTimeout(() => process.exit(3), 240_000);
watchdog.unref();

const dir = mkdtempSync(join(tmpdir(), 'meridian-fetchmap-'));
const report = {maps: {}, cdn: []};
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, viewport: {width: 900, height: 560},
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--enable-unsafe-swiftshader'],
});
try {
  // unpkg.com/<package>@<version>/<path> from the installed package.
  await ctx.route('https://unpkg.com/**', (route) => {
    const m = /^\/((?:@[^/]+\/)?[^@/]+)@[^/]+\/(.+)$/.exec(new URL(route.request().url()).pathname);
    const file = m && join(web, 'node_modules', m[1], m[2]);
    report.cdn.push(new URL(route.request().url()).pathname);
    if (!file || !existsSync(file)) return route.fulfill({status: 404, body: 'not here'});
    return route.fulfill({body: readFileSync(file), contentType: 'text/javascript', headers: {'Access-Control-Allow-Origin': '*'}});
  });
  for (const m of maps) {
    const p = await ctx.newPage();
    const entry = {ok: false, requests: []};
    report.maps[m.name] = entry;
    p.on('request', (r) => {
      const u = new URL(r.url());
      if (u.origin !== APP) entry.requests.push(`${r.method()} ${u.host}${u.pathname}`);
    });
    p.on('pageerror', (e) => (entry.pageerror = e.message));
    p.on('console', (msg) => msg.type() === 'error' && (entry.console = [...(entry.console || []), msg.text().slice(0, 300)]));
    await p.goto(`${APP}/?map=${encodeURIComponent(m.id)}&api=${encodeURIComponent(api)}`);
    try {
      await p.waitForFunction(() => window.__error || (window.__deck && window.__deck.isInitialized &&
        window.__deck.props.layers.every((l) => l.isLoaded)), null, {timeout: 60_000});
      entry.error = await p.evaluate(() => window.__error || null);
      entry.layers = await p.evaluate(() => window.__layers || []);
      await p.waitForTimeout(300);
      // The canvas shows the layers: pixels that are not the page's white.
      entry.drawn = await p.evaluate(() => {
        const c = document.getElementById('map');
        const o = document.createElement('canvas');
        o.width = c.width;
        o.height = c.height;
        const g = o.getContext('2d');
        g.fillStyle = '#fff';
        g.fillRect(0, 0, o.width, o.height);
        g.drawImage(c, 0, 0);
        const d = g.getImageData(0, 0, o.width, o.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245) n++;
        return n / (d.length / 4);
      });
      entry.ok = !entry.error;
    } catch (err) {
      entry.error = String(err.message || err).slice(0, 500);
    }
    await p.screenshot({path: join(shots, `fetchmap-page-${m.name}.png`)}).catch(() => {});
    await p.close();
  }
} finally {
  await ctx.close();
  app.close();
  rmSync(dir, {recursive: true, force: true});
}
console.log(JSON.stringify(report, null, 1));
