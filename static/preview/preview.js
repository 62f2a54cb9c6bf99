// Meridian source preview. The page's own URL names the source the way the
// CARTO maps API does (name=<table>, or q=<SQL> with queryParameters, plus
// any other instantiation parameter such as columns) and carries the token
// (access_token=). The script instantiates the source through the maps API
// with the same requests as @carto/api-client (instantiation, then
// TileJSON), then shows its vector tiles in MapLibre GL JS, sending the
// token as Authorization: Bearer on every API and tile request.
//
// For tests and tools it publishes window.__preview = {state: 'loading' |
// 'idle' | 'error', error, errors[], tilejson, features, tiles} and sets
// window.__mapIdle once the map has rendered every tile in view.

const statusEl = document.getElementById('status');
const panel = document.getElementById('panel');
const preview = (window.__preview = {state: 'loading', error: null, errors: [], tilejson: null, features: 0, tiles: 0});
window.__mapIdle = false;

// CARTO clients switch to POST above this URL length (CARTO_API.md §1.3).
const MAX_URL_LENGTH = 7000;

function show(text) {
  statusEl.textContent = text;
}

function fail(message) {
  preview.state = 'error';
  preview.error = message;
  panel.classList.add('error');
  show(message);
}

// api GETs url with params (POSTs them as JSON when the URL would be too
// long) and returns the JSON answer, or throws the server's error text.
async function api(url, params, token) {
  const u = new URL(url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  const headers = {Accept: 'application/json', Authorization: `Bearer ${token}`};
  let res;
  if (u.href.length > MAX_URL_LENGTH) {
    res = await fetch(url, {method: 'POST', headers: {...headers, 'Content-Type': 'application/json'}, body: JSON.stringify(params)});
  } else {
    res = await fetch(u, {headers});
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    // not JSON: reported below
  }
  if (!res.ok || body === null) {
    throw new Error(`${res.status} ${res.statusText}${body && body.error ? `: ${body.error}` : ''}`);
  }
  return body;
}

// Web Mercator cannot show the poles: keep bounds inside it. Bounds whose
// west is east of their east cross the antimeridian (TileJSON): MapLibre
// fits them with the east edge past 180.
const MAX_LAT = 85.0511;
function mercatorBounds(b) {
  if (!Array.isArray(b) || b.length !== 4 || !b.every(Number.isFinite) || b[1] > b[3]) {
    return [-180, -MAX_LAT, 180, MAX_LAT];
  }
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const west = clamp(b[0], -180, 180);
  let east = clamp(b[2], -180, 180);
  if (west > east) east += 360;
  return [west, clamp(b[1], -MAX_LAT, MAX_LAT), east, clamp(b[3], -MAX_LAT, MAX_LAT)];
}

const FILL = '#2b7bb9';
const LINE = '#0b3c5d';
const POINT = '#d1495b';

// layersFor styles the tiles by geometry type; for an unknown type (a
// query over an untyped column) it adds all three, each filtered.
function layersFor(geometry, sourceLayer) {
  const base = {source: 'src', 'source-layer': sourceLayer};
  const is = (...types) => ['match', ['geometry-type'], types, true, false];
  const fill = [
    {...base, id: 'fill', type: 'fill', paint: {'fill-color': FILL, 'fill-opacity': 0.55}},
    {...base, id: 'fill-outline', type: 'line', paint: {'line-color': LINE, 'line-width': 0.8}},
  ];
  const line = [{...base, id: 'line', type: 'line', paint: {'line-color': LINE, 'line-width': 1.5}}];
  const circle = [{...base, id: 'circle', type: 'circle',
    paint: {'circle-color': POINT, 'circle-radius': 3.5, 'circle-stroke-color': '#ffffff', 'circle-stroke-width': 0.8}}];
  switch (geometry) {
    case 'Polygon':
      return fill;
    case 'LineString':
      return line;
    case 'Point':
      return circle;
  }
  const only = (layers, ...types) => layers.map((l) => ({...l, filter: is(...types)}));
  return [...only(fill, 'Polygon', 'MultiPolygon'), ...only(line, 'LineString', 'MultiLineString'), ...only(circle, 'Point', 'MultiPoint')];
}

function blobURL(source) {
  return URL.createObjectURL(new Blob([source], {type: 'text/javascript'}));
}

async function main() {
  const vendor = window.MERIDIAN_MAPLIBRE;
  if (!vendor) {
    fail('This meridian binary was built without MapLibre GL JS. Run `make static` ' +
      '(npm ci in compat/, then copies maplibre-gl into static/preview/vendor/) and rebuild meridian.');
    return;
  }
  const page = new URL(location.href);
  const token = page.searchParams.get('access_token') || '';
  const params = Object.fromEntries(page.searchParams);
  delete params.access_token;
  // ?basemap=meridian-light|meridian-dark draws the source over the
  // offline basemap (served by this Meridian, /basemap/styles/).
  const basemap = params.basemap || '';
  delete params.basemap;
  if (!params.name && !params.q) {
    fail('Name a source: ?name=<schema.table> or ?q=<SQL query>, with &access_token=<token>.');
    return;
  }
  if (!token) {
    fail('Add &access_token=<token> to the URL.');
    return;
  }
  const type = params.q ? 'query' : 'table';
  const label = params.name || params.q;

  // MapLibre is an ES module with a module worker; both come from blob: URLs.
  const style = document.createElement('style');
  style.textContent = vendor.css;
  document.head.prepend(style);
  const maplibregl = await import(blobURL(vendor.lib));
  maplibregl.setWorkerUrl(blobURL(vendor.worker));

  show(`Instantiating ${type} ${label}…`);
  const client = {v: '3.4', client: 'meridian-preview'};
  // The page is {base}/v3/maps/{conn}/preview: the source is its sibling.
  const source = await api(new URL(type, page).href, {...client, ...params}, token);
  const tilejsonURL = source && source.tilejson && source.tilejson.url && source.tilejson.url[0];
  if (!tilejsonURL) throw new Error('the instantiation answer has no tilejson.url');
  const tj = await api(tilejsonURL, client, token);
  preview.tilejson = tj;
  if (!Array.isArray(tj.tiles) || tj.tiles.length === 0) throw new Error('the TileJSON has no tiles');

  const vl = (tj.vector_layers && tj.vector_layers[0]) || {};
  const stats = (tj.tilestats && tj.tilestats.layers && tj.tilestats.layers[0]) || {};
  const geometry = vl.geometry_type || stats.geometry || 'Unknown';
  const sourceLayer = vl.id || stats.layer || 'default';
  // Only the API's own URLs get the token.
  const origins = new Set([page.origin, new URL(tj.tiles[0]).origin]);

  let mapStyle = {
    version: 8,
    sources: {src: {type: 'vector', tiles: tj.tiles, minzoom: tj.minzoom ?? 0, maxzoom: tj.maxzoom ?? 20}},
    layers: [{id: 'background', type: 'background', paint: {'background-color': '#eef1f4'}}, ...layersFor(geometry, sourceLayer)],
  };
  if (basemap) {
    const res = await fetch(new URL(`/basemap/styles/${encodeURIComponent(basemap)}.json`, page.origin));
    if (!res.ok) throw new Error(`basemap ${basemap}: ${res.status} (is it loaded? meridian basemap load)`);
    const base = await res.json();
    base.sources.src = mapStyle.sources.src;
    base.layers.push(...layersFor(geometry, sourceLayer));
    mapStyle = base;
  }

  const map = new maplibregl.Map({
    container: 'map',
    style: mapStyle,
    bounds: mercatorBounds(tj.bounds),
    fitBoundsOptions: {padding: 24},
    // Lets tests read the pixels back.
    canvasContextAttributes: {preserveDrawingBuffer: true, antialias: true},
    transformRequest: (url) => {
      try {
        // The basemap's URLs carry their own token.
        const u = new URL(url);
        if (origins.has(u.origin) && !u.searchParams.has('access_token')) return {url, headers: {Authorization: `Bearer ${token}`}};
      } catch {
        // not an absolute URL: leave it alone
      }
      return {url};
    },
    attributionControl: false,
  });
  window.__map = map;
  map.addControl(new maplibregl.NavigationControl({showCompass: false}), 'top-right');
  map.on('error', (e) => {
    const message = (e && e.error && e.error.message) || String(e);
    preview.errors.push(message);
    panel.classList.add('error');
    show(`Error: ${message}`);
  });
  map.on('data', (e) => {
    if (e.dataType === 'source' && e.tile) preview.tiles++;
  });
  map.on('idle', () => {
    preview.features = map.querySourceFeatures('src', {sourceLayer}).length;
    if (preview.errors.length === 0) {
      const rows = Number.isFinite(stats.count) ? `, ~${stats.count} rows` : '';
      show(`${label} (${type}, ${geometry}${rows}): ${preview.features} features in the loaded tiles, z${map.getZoom().toFixed(1)}.`);
    }
    if (preview.state !== 'error') preview.state = 'idle';
    window.__mapIdle = true;
  });
}

main().catch((err) => fail(`Preview failed: ${err && err.message ? err.message : err}`));
