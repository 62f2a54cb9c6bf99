// firstpaint.mjs: how long a published map takes to draw in Chromium, from
// the start of navigation to every tile of the first view drawn (deck.gl's
// layers loaded and drawn, and MapLibre's basemap idle), each round in a fresh browser
// context (an empty HTTP cache: a first visit). Run by the bench scenario
// map-public (bench/scenarios/mappublic.go).
//
//   URL        the viewer page, e.g. http://127.0.0.1:8080/map/<id> (required)
//   ROUNDS     how many visits (default 5)
//   LAYERS     how many deck.gl layers the map has (default 1)
//   CHROMIUM   the browser (default /usr/bin/chromium)
//
// Prints {"samples_ms": [...], "ready_ms": [...], "errors": [...]}:
// ready_ms is when every tile of the first view was loaded and parsed
// (the viewer's hold released, before the frame that draws them), the
// part of the first paint that is not rasterization.
import {chromium} from 'playwright-core';

const url = process.env.URL;
const rounds = Number(process.env.ROUNDS || 5);
const layers = Number(process.env.LAYERS || 1);
const watchdog = setTimeout(() => process.exit(3), 60_000 * (rounds + 1));
watchdog.unref();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--enable-unsafe-swiftshader'],
});
const out = {samples_ms: [], ready_ms: [], errors: []};
try {
  for (let i = 0; i < rounds; i++) {
    const ctx = await browser.newContext({viewport: {width: 1280, height: 800}});
    const page = await ctx.newPage();
    try {
      await page.goto(url, {waitUntil: 'commit'});
      // Measured in the page: performance.now() counts from the start of
      // the navigation.
      const ms = await page.waitForFunction((n) => {
        const deck = window.__meridianOverlay?._deck;
        const map = window.__meridianMap;
        const ls = deck?.props.layers || [];
        if (ls.length < n || !ls.every((l) => l.isLoaded) || !map || !map.loaded() || !map.areTilesLoaded()) return false;
        // The viewer holds its layers until the first view's tiles are in
        // (web/src/mapview.jsx): the frame that drew them all must have run.
        const first = window.__meridianFirstView;
        if (first && !first.drawnAt) return false;
        return performance.now();
      }, layers, {timeout: 60_000, polling: 'raf'});
      out.samples_ms.push(await ms.jsonValue());
      // Only a hold released because every layer loaded says when they
      // were ready (not one released by the 15 s timeout).
      const ready = await page.evaluate(() => {
        const f = window.__meridianFirstView;
        return f?.reason === 'loaded' ? f.releasedAt : null;
      });
      if (ready) out.ready_ms.push(ready);
    } catch (err) {
      out.errors.push(String(err.message || err).slice(0, 300));
    }
    await ctx.close();
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
