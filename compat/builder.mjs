// builder.mjs: the Builder as a user drives it, in headless Chromium
// (playwright-core with the system's Chromium). Run by the Go test
// edge/builder_test.go against `meridian up`.
//
//   BASE            the edge, e.g. http://127.0.0.1:8080 (required)
//   ADMIN_EMAIL, ADMIN_PASSWORD   an admin who signs in (required)
//   TABLE           a table with polygons and a numeric column NUMERIC (public.countries)
//   NUMERIC         the numeric column (pop_est)
//   CATEGORY        a text column of TABLE (continent)
//   BROKEN_MAP      a map (of the admin) with a layer on the dropped table DROPPED
//   DROPPED         that table's name
//   IMPORT_FILE     a GeoPackage with several layers, imported through the Data Explorer
//   IMPORT_LAYER    the layer to pick in it
//   DROP_FILE       a small CSV of points dropped on the import dialog (previewed only)
//   LDS_ADDRESS     "place, state": a place the geocoder knows, near roads of the routing graph
//                   (optional: the LDS step runs only with it)
//   ARTIFACTS       where screenshots go (required)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//
// The flow: make a map; add a table and a SQL query; colour the table by
// the numeric column and the query by the category; add a histogram and a
// category widget on the query and select a category (the other widget
// and the map follow); reload (everything is still there); share with
// the viewer (who opens it and cannot edit); publish; open the public
// link in a fresh context with no session. Bad input on the way: a query
// naming a dropped table, a config the server refuses. Prints a JSON
// report; exits 1 when a step failed.

import {mkdtempSync, rmSync, mkdirSync, readFileSync} from 'node:fs';
import {basename} from 'node:path';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const env = (k, d) => {
  const v = process.env[k];
  if (!v && d === undefined) {
    process.stderr.write(`builder.mjs: ${k} is required\n`);
    process.exit(2);
  }
  return v || d;
};
const base = env('BASE');
const admin = {email: env('ADMIN_EMAIL'), password: env('ADMIN_PASSWORD')};
const viewer = {email: 'viewer-' + Date.now() + '@example.test', password: 'viewer password ' + Math.random().toString(36).slice(2)};
const table = env('TABLE', 'public.countries');
const numeric = env('NUMERIC', 'pop_est');
const category = env('CATEGORY', 'continent');
const artifacts = env('ARTIFACTS');
const brokenMap = env('BROKEN_MAP', '');
const dropped = env('DROPPED', '');
const importFile = env('IMPORT_FILE', '');
const importLayer = env('IMPORT_LAYER', '');
const dropFile = env('DROP_FILE', '');
const ldsAddress = env('LDS_ADDRESS', '');
mkdirSync(artifacts, {recursive: true});

const watchdog = setTimeout(() => {
  process.stderr.write('builder.mjs: watchdog expired\n');
  console.log(JSON.stringify(report, null, 1));
  process.exit(3);
}, 600_000);
watchdog.unref();

const report = {ok: false, steps: {}, problems: [], console: []};
const userDirs = [];
const contexts = []; // every browser context, closed before their folders go

async function newContext() {
  const dir = mkdtempSync(join(tmpdir(), 'meridian-builder-'));
  userDirs.push(dir);
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: env('CHROMIUM', '/usr/bin/chromium'), headless: true, viewport: {width: 1400, height: 860},
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--enable-unsafe-swiftshader'],
    timeout: 60_000,
  });
  ctx.setDefaultTimeout(45_000);
  contexts.push(ctx);
  return ctx;
}

function watch(page, who) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') report.console.push(`${who} ${m.type()}: ${m.text().slice(0, 300)}`);
  });
  page.on('pageerror', (e) => report.console.push(`${who} pageerror: ${e.message.slice(0, 300)}`));
  page.on('response', (r) => {
    if (r.status() >= 400) report.console.push(`${who} ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    report.steps[name] = {ok: true, ...(await fn()), ms: Date.now() - t0};
  } catch (err) {
    report.steps[name] = {ok: false, error: String(err?.message ?? err).slice(0, 800), ms: Date.now() - t0};
    if (current) {
      report.steps[name].alerts = await current.locator('[role="alert"]').allInnerTexts().catch(() => []);
      await current.screenshot({path: join(artifacts, `failed-${name}.png`)}).catch(() => {});
    }
    report.problems.push(`${name}: ${report.steps[name].error}`);
    throw err;
  }
}

async function signIn(ctx, who) {
  const res = await ctx.request.post(base + '/accounts-api/login', {data: who, headers: {Origin: base}});
  if (res.status() !== 200) throw new Error(`sign-in of ${who.email}: ${res.status()} ${await res.text()}`);
}

// mapState reads what the editor's map draws: the deck.gl layers (id,
// loaded, tile URL) and how many pixels differ from the first one.
const deckState = (page) => page.evaluate(() => {
  const o = window.__meridianOverlay;
  const deck = o?._deck;
  const layers = (deck?.props.layers || []).map((l) => ({id: l.id, type: l.constructor.layerName, loaded: l.isLoaded, visible: l.props.visible,
    tiles: String(l.props.data?.tiles?.[0] || ''), filters: String(l.props.data?.tiles?.[0] || '').includes('filters=')}));
  return {layers};
});

const saved = (page) => page.locator('[data-testid="save-state"][data-state="saved"]').waitFor();

async function waitDrawn(page, n) {
  await page.waitForFunction((n) => {
    const deck = window.__meridianOverlay?._deck;
    const ls = deck?.props.layers || [];
    // The map holds its first view's layers until their tiles are in
    // (web/src/mapview.jsx firstView), then draws them.
    const first = window.__meridianFirstView;
    return ls.length >= n && ls.every((l) => l.isLoaded) && (!first || !first.held);
  }, n, {timeout: 60_000});
}

async function shot(page, name) {
  await page.screenshot({path: join(artifacts, `${name}.png`)});
}

let mapId;
let current; // the page a failed step is reported from
try {
  const a = await newContext();
  const page = a.pages()[0] || await a.newPage();
  watch(page, 'admin');
  current = page;
  await signIn(a, admin);

  await step('newMap', async () => {
    await page.goto(base + '/maps', {waitUntil: 'load'});
    await page.locator('[data-testid="new-map"]').click();
    await page.waitForURL(/\/maps\/[^/]+$/);
    mapId = page.url().split('/').pop();
    await page.locator('.map-title').fill('Population of the world');
    await saved(page);
    return {mapId};
  });

  await step('addTable', async () => {
    await page.getByRole('button', {name: 'Add source'}).click();
    await page.locator('select[name="table"]').selectOption(table);
    await page.getByRole('dialog').getByRole('button', {name: 'Add'}).click();
    await page.getByRole('dialog').waitFor({state: 'detached'});
    await page.locator('[data-testid="style-panel"][data-ready="true"]').waitFor();
    await page.locator('select[name="color-by"]').selectOption(numeric);
    await page.locator('select[name="color-scale"]').selectOption('quantile');
    await waitDrawn(page, 1);
    await saved(page);
    return await deckState(page);
  });

  await step('badQuery', async () => {
    await page.getByRole('button', {name: 'Add source'}).click();
    await page.getByRole('tab', {name: 'SQL query'}).click();
    await page.locator('textarea[name="query"]').fill('SELECT * FROM public.no_such_table');
    await page.getByRole('dialog').getByRole('button', {name: 'Add'}).click();
    const err = await page.locator('[data-testid="add-error"]').innerText();
    return {error: err};
  });

  await step('addQuery', async () => {
    const q = `SELECT cartodb_id, name, ${category}, ${numeric}, geom FROM ${table} WHERE ${numeric} > 1000000`;
    await page.locator('textarea[name="query"]').fill(q);
    await page.getByRole('dialog').getByRole('button', {name: 'Add'}).click();
    await page.getByRole('dialog').waitFor({state: 'detached'});
    await page.locator('[data-testid="style-panel"][data-ready="true"]').waitFor();
    await page.locator('select[name="color-by"]').selectOption(category);
    await waitDrawn(page, 2);
    await saved(page);
    return await deckState(page);
  });

  await step('widgets', async () => {
    await page.getByRole('tab', {name: 'Widgets'}).click();
    // The query is the first dataset in the picker's order? pick by label.
    const ds = page.locator('select[name="widget-dataset"]');
    const qOpt = await ds.locator('option', {hasText: 'Query'}).first().getAttribute('value');
    await ds.selectOption(qOpt);
    await page.locator('select[name="widget-type"]').selectOption('histogram');
    await page.locator('select[name="widget-column"]').selectOption(numeric);
    await page.getByRole('button', {name: 'Add widget'}).click();
    await page.locator('select[name="widget-type"]').selectOption('category');
    await page.locator('select[name="widget-column"]').selectOption(category);
    await page.getByRole('button', {name: 'Add widget'}).click();
    await page.locator('[data-widget="category"] .cat').first().waitFor();
    await page.locator('[data-widget="histogram"] .hbar').first().waitFor();
    await saved(page);
    const before = await page.locator('[data-widget="histogram"] .hbar').evaluateAll((bs) => bs.map((b) => Number(b.dataset.count)));
    const tilesBefore = (await deckState(page)).layers.map((l) => l.tiles);
    const cats = await page.locator('[data-widget="category"] .cat').evaluateAll((bs) => bs.map((b) => b.dataset.category));
    const pick = cats.includes('Africa') ? 'Africa' : cats[1];
    await page.locator(`[data-widget="category"] .cat[data-category="${pick}"]`).click();
    await page.waitForFunction((before) => {
      const now = [...document.querySelectorAll('[data-widget="histogram"] .hbar')].map((b) => Number(b.dataset.count));
      return now.length && now.join() !== before.join();
    }, before);
    const after = await page.locator('[data-widget="histogram"] .hbar').evaluateAll((bs) => bs.map((b) => Number(b.dataset.count)));
    // The map follows: the filtered dataset's tiles come from a new URL
    // (the filter is part of it), the other layer's stay.
    await page.waitForFunction((tb) => {
      const ls = window.__meridianOverlay?._deck?.props.layers || [];
      return ls.some((l, i) => String(l.props.data?.tiles?.[0]) !== tb[i]);
    }, tilesBefore);
    await waitDrawn(page, 2);
    const st = await deckState(page);
    await shot(page, 'builder-editor');
    return {picked: pick, before, after, layers: st.layers, changedTiles: st.layers.map((l, i) => l.tiles !== tilesBefore[i])};
  });

  await step('reload', async () => {
    await page.reload({waitUntil: 'load'});
    await waitDrawn(page, 2);
    const layers = await page.locator('.layers > li .layer-name').allInnerTexts();
    await page.getByRole('tab', {name: 'Widgets'}).click();
    const widgets = await page.locator('[data-widget]').evaluateAll((ws) => ws.map((w) => w.dataset.widget));
    const legend = await page.locator('[data-testid="legend"]').innerText();
    return {title: await page.locator('.map-title').inputValue(), layers, widgets, legend};
  });

  // The maps list: the map, with the picture the editor captured.
  await step('list', async () => {
    await page.goto(`${base}/maps`, {waitUntil: 'load'});
    const card = page.locator(`[data-map-id="${mapId}"]`);
    await card.waitFor();
    await page.waitForFunction((id) => {
      const img = document.querySelector(`[data-map-id="${id}"] img`);
      return img && img.complete && img.naturalWidth > 0;
    }, mapId, {timeout: 20_000});
    return {title: await card.locator('.map-card-title').innerText(), thumbnail: true};
  });

  // SQL parameters: defined in their tab, used as :min_pop by a query
  // layer, bound to its queryParameters (saved, and what fetchMap sends
  // once published); a new value redraws the layer, and a formula widget
  // on it counts the rows of the new value.
  await step('params', async () => {
    await page.goto(`${base}/maps/${mapId}`, {waitUntil: 'load'});
    await waitDrawn(page, 2);
    await page.getByRole('tab', {name: 'Parameters'}).click();
    await page.locator('input[name="param-name"]').fill('min_pop');
    await page.locator('input[name="param-value"]').fill('100000000');
    await page.getByRole('button', {name: 'Add parameter'}).click();
    await page.locator('[data-param="min_pop"]').waitFor();
    await saved(page);
    await page.getByRole('tab', {name: 'Layers'}).click();
    await page.getByRole('button', {name: 'Add source'}).click();
    await page.getByRole('tab', {name: 'SQL query'}).click();
    await page.locator('textarea[name="query"]').fill(`SELECT cartodb_id, name, ${numeric}, geom FROM ${table} WHERE ${numeric} > :min_pop`);
    await page.getByRole('dialog').getByRole('button', {name: 'Add'}).click();
    await page.getByRole('dialog').waitFor({state: 'detached'});
    await waitDrawn(page, 3);
    const doc = async () => page.evaluate(async (id) => (await (await fetch(`/workspace-api/maps/${id}`)).json()), mapId);
    const ds = (await doc()).datasets.find((d) => d.source.includes(':min_pop'));
    await page.getByRole('tab', {name: 'Widgets'}).click();
    await page.locator('select[name="widget-dataset"]').selectOption(ds.id);
    await page.locator('select[name="widget-type"]').selectOption('formula');
    await page.locator('select[name="widget-column"]').selectOption(numeric);
    await page.getByRole('button', {name: 'Add widget'}).click();
    const formula = page.locator('[data-widget="formula"] [data-testid="formula-value"]');
    await formula.waitFor();
    const countBefore = await formula.innerText();
    const tilesBefore = (await deckState(page)).layers.map((l) => l.tiles);
    await page.getByRole('tab', {name: 'Parameters'}).click();
    await page.locator('input[name="param-min_pop"]').fill('300000000');
    await page.locator('input[name="param-min_pop"]').press('Tab');
    await page.waitForFunction((before) => {
      const v = document.querySelector('[data-widget="formula"] [data-testid="formula-value"]');
      return v && v.innerText !== before;
    }, countBefore);
    await page.waitForFunction((tb) => {
      const ls = window.__meridianOverlay?._deck?.props.layers || [];
      return ls.some((l, i) => String(l.props.data?.tiles?.[0]) !== tb[i]);
    }, tilesBefore);
    await waitDrawn(page, 3);
    await saved(page);
    const after = (await doc()).datasets.find((d) => d.id === ds.id);
    await shot(page, 'builder-params');
    return {boundBefore: ds.queryParameters, boundAfter: after.queryParameters, countBefore, countAfter: await formula.innerText(),
      params: (await doc()).keplerMapConfig.config.sqlParameters.map((p) => `${p.name}=${p.value}`)};
  });

  // Range, time series and table widgets on a query with a date column
  // (a country's "since" year, from its id): their numbers, then a range
  // applied and a year picked, each filtering the others.
  await step('moreWidgets', async () => {
    await page.getByRole('tab', {name: 'Layers'}).click();
    await page.getByRole('button', {name: 'Add source'}).click();
    await page.getByRole('tab', {name: 'SQL query'}).click();
    await page.locator('textarea[name="query"]').fill(`SELECT cartodb_id, name, ${numeric}, make_date(2000 + (cartodb_id % 20)::int, 1, 1) AS since, geom FROM ${table} WHERE ${numeric} > 1000000`);
    await page.getByRole('dialog').getByRole('button', {name: 'Add'}).click();
    await page.getByRole('dialog').waitFor({state: 'detached'});
    await waitDrawn(page, 4);
    const doc = await page.evaluate(async (id) => (await (await fetch(`/workspace-api/maps/${id}`)).json()), mapId);
    const ds = doc.datasets.find((d) => d.source.includes('AS since'));
    await page.getByRole('tab', {name: 'Widgets'}).click();
    await page.locator('select[name="widget-dataset"]').selectOption(ds.id);
    for (const [type, column] of [['range', numeric], ['timeseries', 'since'], ['table', numeric]]) {
      await page.locator('select[name="widget-type"]').selectOption(type);
      await page.locator('select[name="widget-column"]').selectOption(column);
      await page.getByRole('button', {name: 'Add widget'}).click();
    }
    const range = page.locator('[data-widget="range"]');
    const series = page.locator('[data-widget="timeseries"]');
    const tbl = page.locator('[data-widget="table"]');
    await range.locator('[data-testid="range-span"]').waitFor();
    await series.locator('.hbar').first().waitFor();
    await tbl.locator('[data-testid="table-total"]').waitFor();
    await saved(page);
    const state = async () => ({
      total: Number(await tbl.locator('[data-testid="table-total"]').getAttribute('data-total')),
      first: await tbl.locator('tbody tr').first().locator('td').first().innerText(),
      years: await series.locator('.hbar').evaluateAll((bs) => bs.map((b) => {
        const n = Number(b.dataset.name);
        return [new Date(Number.isNaN(n) ? b.dataset.name : n).getUTCFullYear(), Number(b.dataset.count)];
      })),
    });
    const span = range.locator('[data-testid="range-span"]');
    const before = {...(await state()), min: Number(await span.getAttribute('data-min')), max: Number(await span.getAttribute('data-max'))};
    // A range: the table and the time series follow.
    await range.getByLabel('Minimum').fill('50000000');
    await range.getByLabel('Maximum').fill('2000000000');
    await range.getByRole('button', {name: 'Apply'}).click();
    await page.waitForFunction((t) => Number(document.querySelector('[data-widget="table"] [data-testid="table-total"]')?.dataset.total) !== t, before.total);
    await page.waitForFunction((t) => [...document.querySelectorAll('[data-widget="timeseries"] .hbar')].reduce((n, b) => n + Number(b.dataset.count), 0) === t,
      Number(await tbl.locator('[data-testid="table-total"]').getAttribute('data-total')));
    const ranged = await state();
    // A year: the table follows.
    await series.locator('.hbar').first().click();
    await page.waitForFunction((t) => Number(document.querySelector('[data-widget="table"] [data-testid="table-total"]')?.dataset.total) !== t, ranged.total);
    const year = await state();
    await shot(page, 'builder-widgets');
    return {before, ranged, year: {total: year.total, picked: before.years[0][0]}};
  });

  // A map whose table was dropped: its layer is off with a message naming
  // the source, the other layer is drawn, and the map still saves.
  if (brokenMap) {
    await step('brokenDataset', async () => {
      await page.goto(`${base}/maps/${brokenMap}`, {waitUntil: 'load'});
      const alert = page.locator('[data-testid="render-error"]');
      await alert.waitFor();
      await waitDrawn(page, 1);
      const drawn = (await deckState(page)).layers.length;
      await page.locator('.map-title').fill('Broken but saved');
      await saved(page);
      return {error: await alert.innerText(), drawn};
    });
  }

  // Imports in the Data Explorer: a file dropped on the dialog is
  // previewed; a GeoPackage's layer is picked, imported with its bytes
  // shown, the banner follows the job, and the table becomes a map.
  if (importFile) {
    await step('importDrop', async () => {
      await page.goto(`${base}/data`, {waitUntil: 'load'});
      await page.locator('[data-testid="import-open"]').click();
      const csv = readFileSync(dropFile).toString('base64');
      await page.locator('[data-testid="dropzone"]').evaluate((el, {b64, name}) => {
        const bin = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bin], name, {type: 'text/csv'}));
        el.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
      }, {b64: csv, name: basename(dropFile)});
      const preview = page.locator('[data-testid="import-preview"]');
      await preview.waitFor();
      const text = await preview.innerText();
      const dest = await page.locator('input[name="destination"]').inputValue();
      await page.getByRole('dialog').getByRole('button', {name: 'Cancel'}).click();
      return {preview: text.slice(0, 400), destination: dest};
    });

    await step('importGpkg', async () => {
      await page.locator('[data-testid="import-open"]').click();
      await page.locator('input[name="file"]').setInputFiles(importFile);
      await page.locator('[data-testid="import-preview"]').waitFor();
      const layers = await page.locator('select[name="layer"] option').count();
      await page.locator('select[name="layer"]').selectOption(importLayer);
      await page.waitForFunction((l) => document.querySelector('[data-testid="import-preview"]') && !document.querySelector('[role="dialog"] [role="status"]') &&
        document.querySelector('select[name="layer"]')?.value === l, importLayer);
      const preview = await page.locator('[data-testid="import-preview"]').innerText();
      await page.locator('input[name="destination"]').fill('imported_' + importLayer);
      await page.getByRole('dialog').getByRole('button', {name: 'Import'}).click();
      const banner = page.locator('[data-testid="import-banner"]');
      await banner.waitFor();
      await page.locator('[data-testid="import-banner"][data-status="success"], [data-testid="import-banner"][data-status="failure"]').waitFor({timeout: 120_000});
      const status = await banner.getAttribute('data-status');
      const text = await banner.innerText();
      await shot(page, 'builder-import');
      if (status !== 'success') throw new Error(`import ended ${status}: ${text}`);
      await banner.getByRole('button', {name: 'Create map'}).click();
      await page.waitForURL(/\/maps\/[^/]+$/);
      await waitDrawn(page, 1);
      const st = await deckState(page);
      return {layers, preview: preview.slice(0, 400), banner: text, mapLayers: st.layers.length, tiles: st.layers[0]?.tiles || ''};
    });
  }

  // Location data services on the map: search an address, then isolines
  // around the middle of the view become a layer.
  if (ldsAddress) {
    await step('lds', async () => {
      await page.goto(`${base}/maps/${mapId}`, {waitUntil: 'load'});
      await waitDrawn(page, 2);
      await page.locator('input[name="address"]').fill(ldsAddress);
      await page.locator('input[name="address"]').press('Enter');
      // The result in the state the address names, else the first.
      const state = ldsAddress.split(',').pop().trim();
      const all = page.locator('[data-testid="search-results"] button');
      await all.first().waitFor();
      const first = (await all.filter({hasText: state}).count()) ? all.filter({hasText: state}).first() : all.first();
      const found = await first.innerText();
      await first.click();
      await page.waitForFunction(() => window.__meridianMap.getZoom() > 8);
      await page.getByRole('tab', {name: 'Map'}).click();
      await page.locator('[data-testid="isoline-car"]').click();
      const box = await page.locator('[data-testid="map"]').boundingBox();
      await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
      await page.locator('[data-testid="isoline-note"].ok, [data-testid="isoline-note"].error').waitFor({timeout: 60_000});
      const note = await page.locator('[data-testid="isoline-note"]').innerText();
      await waitDrawn(page, 3);
      await saved(page);
      await shot(page, 'builder-isolines');
      return {found, note, layers: (await deckState(page)).layers.length};
    });
  }

  // The SQL editor: Ctrl+Enter, the result on a map, exports, history.
  await step('sql', async () => {
    await page.goto(`${base}/data/sql`, {waitUntil: 'load'});
    // Ready once the page holds its data token.
    await page.locator('[data-testid="sql-run"]:not([disabled])').waitFor();
    const q = `SELECT name, ${category}, geom FROM ${table} WHERE ${category} = 'Europe'`;
    await page.locator('textarea[name="sql"]').fill(q);
    await page.locator('textarea[name="sql"]').press('Control+Enter');
    const summary = await page.locator('[data-testid="sql-summary"]').innerText();
    await waitDrawn(page, 1);
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('[data-testid="sql-csv"]').click()]);
    const csv = readFileSync(await download.path(), 'utf8');
    const [gj] = await Promise.all([page.waitForEvent('download'), page.locator('[data-testid="sql-geojson"]').click()]);
    const geojson = JSON.parse(readFileSync(await gj.path(), 'utf8'));
    await page.locator('textarea[name="sql"]').fill('SELECT nope FROM nowhere');
    await page.locator('[data-testid="sql-run"]').click();
    const error = await page.locator('[data-testid="sql-error"]').innerText();
    await page.reload({waitUntil: 'load'});
    // The page renders after its script runs; read the history once it has.
    await page.locator('[data-testid="sql-run"]:not([disabled])').waitFor();
    const history = await page.locator('select[name="history"] option').allInnerTexts();
    return {summary, csvLines: csv.trim().split('\n').length, csvHeader: csv.split('\n')[0], features: geojson.features?.length ?? -1, error, history: history.slice(0, 3)};
  });

  // A viewer of the organization, invited by the admin.
  await step('invite', async () => {
    const inv = await a.request.post(base + '/workspace-api/invites', {data: {email: viewer.email, role: 'viewer'}, headers: {Origin: base}});
    if (inv.status() !== 201) throw new Error(`invite: ${inv.status()} ${await inv.text()}`);
    const link = (await inv.json()).link || '';
    const token = /token=([\w-]+)/.exec(link)?.[1];
    if (!token) throw new Error(`no invite link: ${link}`);
    const up = await a.request.post(base + '/accounts-api/signup', {data: {...viewer, invite: token}, headers: {Origin: base}});
    if (up.status() !== 201) throw new Error(`viewer sign-up: ${up.status()} ${await up.text()}`);
    // The sign-up signed the admin's context in as the viewer: sign the admin in again.
    await signIn(a, admin);
    return {viewer: viewer.email};
  });

  await step('share', async () => {
    await page.goto(`${base}/maps/${mapId}`, {waitUntil: 'load'});
    await page.getByRole('tab', {name: 'Share'}).click();
    await page.locator('input[name="privacy"][value="users"]').check();
    await page.locator(`input[name="share-user"][value="${viewer.email}"]`).check();
    await page.getByText('Sharing updated.').waitFor();
    await shot(page, 'builder-share');
    return {published: await page.locator('[data-testid="public-link"]').count() > 0};
  });

  let viewerLayers;
  await step('viewerOpens', async () => {
    const v = await newContext();
    const vp = v.pages()[0] || await v.newPage();
    watch(vp, 'viewer');
    current = vp;
    await signIn(v, viewer);
    await vp.goto(`${base}/maps/${mapId}`, {waitUntil: 'load'});
    await vp.waitForURL(`${base}/map/${mapId}`);
    await waitDrawn(vp, 4);
    viewerLayers = (await deckState(vp)).layers;
    const editUI = await vp.locator('.sidebar, [data-testid="save-state"]').count();
    const patch = await v.request.patch(`${base}/workspace-api/maps/${mapId}`, {data: {title: 'hijacked'}, headers: {Origin: base}});
    await shot(vp, 'builder-viewer');
    const listed = await (await v.request.get(`${base}/workspace-api/maps?scope=shared`)).text();
    await v.close();
    current = page;
    return {layers: viewerLayers.map((l) => l.id), editUI, patchStatus: patch.status(), listed: listed.includes(mapId)};
  });

  let link;
  await step('publish', async () => {
    await page.locator('input[name="privacy"][value="public"]').check();
    await page.getByText('Sharing updated.').waitFor();
    await page.locator('[data-testid="publish"]').click();
    await page.getByText('Published.', {exact: true}).waitFor();
    link = await page.locator('[data-testid="public-link"]').inputValue();
    const embed = await page.locator('[data-testid="embed-snippet"]').inputValue();
    return {link, embed};
  });

  await step('publicLink', async () => {
    const p = await newContext();
    const pp = p.pages()[0] || await p.newPage();
    watch(pp, 'public');
    current = pp;
    const res = await pp.goto(link, {waitUntil: 'load'});
    await waitDrawn(pp, 4);
    const st = await deckState(pp);
    const session = await (await p.request.get(base + '/accounts-api/session')).json();
    await shot(pp, 'builder-public');
    const legend = await pp.locator('[data-testid="legend"]').innerText();
    const frame = res.headers()['content-security-policy'] || '';
    await p.close();
    current = page;
    return {status: res.status(), layers: st.layers.map((l) => l.id), signedIn: session.signedIn, legend, frameAncestors: /frame-ancestors \*/.test(frame)};
  });
  report.ok = report.problems.length === 0;
  console.log(JSON.stringify(report, null, 1));
} catch (err) {
  report.problems.push(String(err?.message ?? err));
  console.log(JSON.stringify(report, null, 1));
}
// Chromium may still be writing a profile while it exits: the clean-up
// retries, and never fails the run.
for (const c of contexts) await c.close().catch(() => {});
for (const d of userDirs) {
  try {
    rmSync(d, {recursive: true, force: true, maxRetries: 5, retryDelay: 200});
  } catch (err) {
    console.error(`leaving ${d}: ${err.message}`);
  }
}
process.exit(report.problems.length ? 1 : 0);
