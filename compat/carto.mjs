// carto.mjs runs the real @carto/api-client against a Meridian server and
// prints a JSON report on stdout; it exits 1 when a check fails (2 on bad
// usage). edge/compat_test.go runs it against `meridian up`.
//
//   API_BASE_URL   the client's apiBaseUrl, e.g. http://127.0.0.1:8080/api (required)
//   ACCESS_TOKEN   a token granting TABLE, QUERY and SQL (required)
//   CONNECTION     the data connection (default: local)
//   TABLE          a table with a geom column, e.g. public.countries (required)
//   TABLE_COLUMNS  comma-separated columns for the table source (optional)
//   QUERY          SQL of the query source, with $1… placeholders (required)
//   QUERY_PARAMS   its queryParameters, a JSON array (default: [])
//   SQL            SQL for query(), the SQL API (required)
//   SQL_PARAMS     its queryParameters, a JSON array (default: [])
//   MISSING_TABLE  a table that does not exist, for the error path
//                  (default: public.meridian_compat_missing; the token must
//                  grant it, e.g. with *, or the answer is 403, not 404)
//   DENIED_TOKEN   optional: a token without grants for QUERY and SQL; the
//                  query source and query() must then fail with CartoAPIError
//   QUADBIN_TABLE  optional: a table with a bigint quadbin column named quadbin,
//                  for the quadbinTableSource check
//   QUADBIN_QUERY  optional, with QUADBIN_TABLE: a query over it, for widgets on
//                  a quadbinQuerySource
//   H3_TABLE, H3_QUERY  optional: a table with a hex text H3 column named h3,
//                  and a query over it, for widgets on h3 sources
//   H3_PICK_TILE   optional, with them: an H3 resolution 0 cell (hex) holding
//                  data, for the h3Pick check
//   INDEX_POLYGON  the spatial filter of the spatial-index widgets, GeoJSON
//                  (default: WIDGETS' polygon)
//   WIDGETS        optional JSON: the widget calls to make through the sources'
//                  widgetSource (the Model and Stats APIs), on columns of TABLE:
//                    {"category": "<text column>", "number": "<numeric column>",
//                     "label": "<text column>", "ticks": [numbers],
//                     "filter": {CARTO filters}, "polygon": {GeoJSON Polygon},
//                     "timeQuery": "<SQL with a timestamp column>", "timeColumn": "<it>"}
//                  The token must also grant timeQuery.
//
// Checks (each in report.checks, with ok and the details asserted on):
//   tableSource      vectorTableSource(TABLE) → TileJSON; one tile fetched and decoded
//   querySource      vectorQuerySource(QUERY, QUERY_PARAMS) by GET; one tile decoded
//   querySourcePost  the same SQL padded past the 7000-char URL limit: the client POSTs
//   sql              query(SQL, SQL_PARAMS) by GET
//   sqlPost          the same, padded: POST
//   missingTable     vectorTableSource(MISSING_TABLE) throws CartoAPIError for a 404
//   deniedQuery, deniedQueryPost, deniedSql   with DENIED_TOKEN: CartoAPIError for a 403
//   quadbinTableSource  with QUADBIN_TABLE: quadbinTableSource (count(*) AS n,
//                    aggregationResLevel 4) → TileJSON; the root cell's tile
//                    fetched from its {i} template and decoded
//   quadbinWidgets, h3Widgets  with QUADBIN_QUERY, H3_TABLE and H3_QUERY: the
//                    widgetSource of the table and query sources: count,
//                    count within INDEX_POLYGON (spatialFilter; the client adds
//                    spatialFiltersMode intersects), the same on the query
//                    source, and categories by name within the polygon
//   quadbinPick, h3Pick  with QUADBIN_QUERY (H3_QUERY and H3_PICK_TILE): the
//                    fullest cell of a tile (quadbin: the root tile at level
//                    4, coarser than the data; h3: H3_PICK_TILE's cells at the
//                    data's resolution), picked by its id: getFeatures, counts
//                    with featureIds on the table and query sources, and with
//                    a picked-cells spatialFilter {indexes, type}
//   with WIDGETS (values as the client returns them, asserted by the caller):
//   widgetFormula      getFormula: count, sum(number), count within filter, within
//                      polygon (spatialFilter), and with a filter owned by the widget
//   widgetQueryFormula getFormula count on the QUERY source (QUERY_PARAMS bound)
//   widgetCategories   getCategories by category, count, othersThreshold 3
//   widgetHistogram    getHistogram of number at ticks
//   widgetRange        getRange of number
//   widgetScatter      getScatter number × number
//   widgetTable        getTable [label, number] by number desc, limit 5, offset 2
//   widgetTimeSeries   getTimeSeries on timeQuery, yearly counts
//   widgetAggregations getAggregations, list and string forms
//   widgetExtent       getExtent of the table within filter, and of the query
//   widgetPost         getFormula whose filter makes the URL longer than 2048: POST
//   widgetPick         tiles with _carto_feature_id, getFeatures (pick) and a
//                      formula restricted by featureIds
//   widgetUnknownColumn  getFormula on a missing column: InvalidColumnError
//   widgetDenied       with DENIED_TOKEN, a query widget: the client's 403 error
// report.requests is the wire log: every fetch the client and the script made.

import {readFileSync} from 'node:fs';
import {
  vectorTableSource, vectorQuerySource, quadbinTableSource, quadbinQuerySource, h3TableSource, h3QuerySource,
  query, CartoAPIError, WidgetQuerySource,
} from '@carto/api-client';
import {VectorTile} from '@mapbox/vector-tile';
import {PbfReader} from 'pbf';

// The client switches from GET to POST above this URL length (CARTO_API.md §1.3).
const MAX_URL_LENGTH = 7000;

function env(name, fallback) {
  const v = process.env[name];
  if (v === undefined || v === '') {
    if (fallback === undefined) {
      process.stderr.write(`carto.mjs: ${name} is required\n`);
      process.exit(2);
    }
    return fallback;
  }
  return v;
}

function jsonArray(name) {
  const v = JSON.parse(env(name, '[]'));
  if (!Array.isArray(v)) {
    process.stderr.write(`carto.mjs: ${name} must be a JSON array\n`);
    process.exit(2);
  }
  return v;
}

const cfg = {
  apiBaseUrl: env('API_BASE_URL'),
  accessToken: env('ACCESS_TOKEN'),
  connectionName: env('CONNECTION', 'local'),
};
const table = env('TABLE');
const tableColumns = env('TABLE_COLUMNS', '').split(',').filter(Boolean);
const querySQL = env('QUERY');
const queryParams = jsonArray('QUERY_PARAMS');
const sqlSQL = env('SQL');
const sqlParams = jsonArray('SQL_PARAMS');
const missingTable = env('MISSING_TABLE', 'public.meridian_compat_missing');
const deniedToken = process.env.DENIED_TOKEN || '';
const widgets = process.env.WIDGETS ? JSON.parse(process.env.WIDGETS) : null;
const quadbinTable = process.env.QUADBIN_TABLE || '';
const quadbinQuery = process.env.QUADBIN_QUERY || '';
const h3Table = process.env.H3_TABLE || '';
const h3Query = process.env.H3_QUERY || '';
const h3PickTile = process.env.H3_PICK_TILE || '';
const indexPolygon = process.env.INDEX_POLYGON ? JSON.parse(process.env.INDEX_POLYGON) : widgets?.polygon;

// pad makes sql long enough that the client must POST it: a trailing
// block comment, which the server's grant matching ignores (grants hold
// the normalized text, without comments).
function pad(sql) {
  return `${sql}\n/* ${'padding '.repeat(Math.ceil(MAX_URL_LENGTH / 8) + 10)}*/`;
}

// The wire log: every request, with the token it carried (by role).
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const auth = new Headers(init.headers || {}).get('authorization') || '';
  const tok = auth.replace(/^Bearer /i, '');
  const entry = {
    method: (init.method || 'GET').toUpperCase(),
    path: url.pathname,
    urlLength: url.href.length,
    bodyLength: typeof init.body === 'string' ? init.body.length : 0,
    token: tok === cfg.accessToken ? 'access' : tok === deniedToken && tok ? 'denied' : tok ? 'other' : 'none',
    status: 0,
  };
  requests.push(entry);
  const res = await realFetch(input, init);
  entry.status = res.status;
  return res;
};

// describeError keeps what the test asserts on from a thrown error.
function describeError(err) {
  const out = {name: err?.name ?? typeof err, message: String(err?.message ?? err)};
  if (err instanceof CartoAPIError) {
    out.cartoAPIError = true;
    out.status = err.response?.status ?? 0;
    out.serverError = err.error?.message ?? '';
    out.responseJson = err.responseJson ?? null;
    out.requestType = err.errorContext?.requestType ?? '';
  }
  return out;
}

// fields lists a schema as name:type.
function fields(schema) {
  return (schema ?? []).map((f) => `${f.name}:${f.type}`);
}

// summarize keeps the parts of a source's TileJSON the test checks.
function summarize(tj) {
  const tiles0 = new URL(tj.tiles[0]);
  const layer = tj.tilestats?.layers?.[0] ?? {};
  return {
    tilejson: tj.tilejson,
    tiles: tj.tiles,
    formatTiles: tiles0.searchParams.get('formatTiles'),
    minzoom: tj.minzoom,
    maxzoom: tj.maxzoom,
    bounds: tj.bounds,
    geometry: layer.geometry ?? null,
    count: layer.count ?? null,
    attributes: (layer.attributes ?? []).map((a) => a.attribute),
    vectorLayers: (tj.vector_layers ?? []).map((l) => l.id),
    schema: fields(tj.schema),
    accessTokenSet: tj.accessToken === cfg.accessToken,
  };
}

// fetchTile gets z/x/y of a TileJSON's first template as a deck.gl layer
// would (Authorization: Bearer) and decodes it as MVT.
async function fetchTile(tj, z, x, y) {
  const url = tj.tiles[0].replace('{z}', z).replace('{x}', x).replace('{y}', y);
  const res = await fetch(url, {headers: {Authorization: `Bearer ${cfg.accessToken}`}});
  const buf = new Uint8Array(await res.arrayBuffer());
  const out = {
    z, x, y,
    status: res.status,
    contentType: res.headers.get('content-type'),
    bytes: buf.length,
    layers: {},
  };
  if (res.status !== 200) {
    out.body = new TextDecoder().decode(buf).slice(0, 500);
    return out;
  }
  const vt = new VectorTile(new PbfReader(buf));
  const types = ['Unknown', 'Point', 'LineString', 'Polygon'];
  for (const [name, layer] of Object.entries(vt.layers)) {
    const l = {features: layer.length, extent: layer.extent, version: layer.version, types: {}, keys: []};
    const keys = new Set();
    for (let i = 0; i < layer.length; i++) {
      const f = layer.feature(i);
      const t = types[f.type] ?? String(f.type);
      l.types[t] = (l.types[t] ?? 0) + 1;
      for (const k of Object.keys(f.properties)) keys.add(k);
    }
    l.keys = [...keys].sort();
    out.layers[name] = l;
  }
  return out;
}

// fetchSpatialTile gets the tile of cell (hex) from a spatial-index
// TileJSON's {i} template, as deck.gl's QuadbinTileLayer would, and decodes
// CARTO's spatial-index tile (Tile{scheme=1; cells=2}, Cells{indices=1;
// properties=2; numericProps=3}, indices packed fixed64, numeric values
// packed doubles).
async function fetchSpatialTile(tj, cell) {
  const url = tj.tiles[0].replace('{i}', cell);
  const res = await fetch(url, {headers: {Authorization: `Bearer ${cfg.accessToken}`}});
  const buf = new Uint8Array(await res.arrayBuffer());
  const out = {cell, status: res.status, contentType: res.headers.get('content-type'), bytes: buf.length};
  if (res.status !== 200) {
    out.body = new TextDecoder().decode(buf).slice(0, 500);
    return out;
  }
  const tile = new PbfReader(buf).readFields((tag, obj, pbf) => {
    if (tag === 1) obj.scheme = pbf.readVarint();
    else if (tag === 2) {
      pbf.readFields((tag, cells, pbf) => {
        if (tag === 1) {
          pbf.readFields((tag, ix, pbf) => {
            if (tag === 1) ix.bytes = pbf.readBytes();
          }, cells.indices, pbf.readVarint() + pbf.pos);
        } else if (tag === 3) {
          const kv = pbf.readFields((tag, kv, pbf) => {
            if (tag === 1) kv.key = pbf.readString();
            else if (tag === 2) {
              pbf.readFields((tag, v, pbf) => {
                if (tag === 1) v.bytes = pbf.readBytes();
              }, kv, pbf.readVarint() + pbf.pos);
            }
          }, {}, pbf.readVarint() + pbf.pos);
          cells.numeric[kv.key] = kv.bytes;
        } else pbf.skip(tag);
      }, obj.cells, pbf.readVarint() + pbf.pos);
    }
  }, {scheme: -1, cells: {indices: {}, numeric: {}}});
  const ib = tile.cells.indices.bytes ?? new Uint8Array();
  const ids = new DataView(ib.buffer, ib.byteOffset, ib.byteLength);
  out.scheme = tile.scheme;
  out.cells = ib.byteLength / 8;
  out.resolutions = [...new Set(Array.from({length: out.cells}, (_, i) => Number((ids.getBigUint64(8 * i, true) >> 52n) & 0x1fn)))];
  out.sums = {};
  for (const [key, b] of Object.entries(tile.cells.numeric)) {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    let sum = 0;
    for (let i = 0; i < b.byteLength / 8; i++) {
      const v = dv.getFloat64(8 * i, true);
      sum += v;
      // top: the cell with the largest value of the first property (hex id).
      if (out.top === undefined || out.top.key === key && v > out.top.value) {
        out.top = {key, value: v, id: ids.getBigUint64(8 * i, true).toString(16)};
      }
    }
    out.sums[key] = sum;
  }
  return out;
}

const report = {
  client: {name: '@carto/api-client', version: readPackageVersion('@carto/api-client')},
  node: process.version,
  ok: true,
  checks: {},
  requests,
};

function readPackageVersion(name) {
  try {
    const url = new URL(`./node_modules/${name}/package.json`, import.meta.url);
    return JSON.parse(readFileSync(url, 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

// check runs fn and records its result under name; expectStatus makes a
// CartoAPIError for a server answer with that status the passing outcome.
async function check(name, fn, {expectStatus = 0} = {}) {
  const expectError = expectStatus > 0;
  const first = requests.length;
  const result = {ok: false};
  try {
    Object.assign(result, await fn());
    result.ok = !expectError;
    if (expectError) result.problem = 'succeeded, want a CartoAPIError';
  } catch (err) {
    result.error = describeError(err);
    result.ok = expectError && err instanceof CartoAPIError && err.response?.status === expectStatus;
    if (!result.ok) result.problem = expectError ? `threw, but not a CartoAPIError for a ${expectStatus} answer` : 'threw';
  }
  result.requests = requests.slice(first).map((r) => `${r.method} ${r.path} ${r.status}`);
  if (!result.ok) report.ok = false;
  report.checks[name] = result;
}

await check('tableSource', async () => {
  const tj = await vectorTableSource({...cfg, tableName: table, ...(tableColumns.length && {columns: tableColumns})});
  return {...summarize(tj), tile: await fetchTile(tj, 0, 0, 0)};
});

await check('querySource', async () => {
  const tj = await vectorQuerySource({...cfg, sqlQuery: querySQL, queryParameters: queryParams});
  return {...summarize(tj), tile: await fetchTile(tj, 0, 0, 0)};
});

await check('querySourcePost', async () => {
  const sqlQuery = pad(querySQL);
  const tj = await vectorQuerySource({...cfg, sqlQuery, queryParameters: queryParams});
  return {sqlLength: sqlQuery.length, ...summarize(tj), tile: await fetchTile(tj, 0, 0, 0)};
});

await check('sql', async () => {
  const res = await query({...cfg, sqlQuery: sqlSQL, queryParameters: sqlParams});
  return {rows: res.rows, schema: fields(res.schema), meta: res.meta};
});

await check('sqlPost', async () => {
  const sqlQuery = pad(sqlSQL);
  const res = await query({...cfg, sqlQuery, queryParameters: sqlParams});
  return {sqlLength: sqlQuery.length, rows: res.rows, schema: fields(res.schema)};
});

await check('missingTable', async () => {
  await vectorTableSource({...cfg, tableName: missingTable});
  return {};
}, {expectStatus: 404});

if (deniedToken) {
  const denied = {...cfg, accessToken: deniedToken};
  await check('deniedQuery', async () => {
    await vectorQuerySource({...denied, sqlQuery: querySQL, queryParameters: queryParams});
    return {};
  }, {expectStatus: 403});
  await check('deniedQueryPost', async () => {
    await vectorQuerySource({...denied, sqlQuery: pad(querySQL), queryParameters: queryParams});
    return {};
  }, {expectStatus: 403});
  await check('deniedSql', async () => {
    await query({...denied, sqlQuery: sqlSQL, queryParameters: sqlParams});
    return {};
  }, {expectStatus: 403});
}

if (quadbinTable) {
  await check('quadbinTableSource', async () => {
    const tj = await quadbinTableSource({...cfg, tableName: quadbinTable, aggregationExp: 'count(*) AS n', aggregationResLevel: 4});
    return {
      ...summarize(tj),
      scheme: tj.scheme,
      spatialIndex: new URL(tj.tiles[0]).searchParams.get('spatialIndex'),
      minresolution: tj.minresolution,
      maxresolution: tj.maxresolution,
      spatialTile: await fetchSpatialTile(tj, '480fffffffffffff'),
    };
  });
}

// indexWidgets calls widgets through the widgetSource of a spatial-index
// table source and query source (see quadbinWidgets).
async function indexWidgets(tableSource, querySource) {
  const byTable = (await tableSource).widgetSource;
  const byQuery = (await querySource).widgetSource;
  const categories = await byTable.getCategories({column: 'name', operation: 'count', spatialFilter: indexPolygon});
  return {
    count: await byTable.getFormula({column: '*', operation: 'count'}),
    inPolygon: await byTable.getFormula({operation: 'count', spatialFilter: indexPolygon}),
    queryInPolygon: await byQuery.getFormula({operation: 'count', spatialFilter: indexPolygon}),
    categories: categories.length,
  };
}

if (quadbinTable && quadbinQuery) {
  await check('quadbinWidgets', () => indexWidgets(
    quadbinTableSource({...cfg, tableName: quadbinTable, aggregationExp: 'count(*) AS n'}),
    quadbinQuerySource({...cfg, sqlQuery: quadbinQuery, aggregationExp: 'count(*) AS n'})));
}

if (h3Table && h3Query) {
  await check('h3Widgets', () => indexWidgets(
    h3TableSource({...cfg, tableName: h3Table, aggregationExp: 'count(*) AS n'}),
    h3QuerySource({...cfg, sqlQuery: h3Query, aggregationExp: 'count(*) AS n'})));
}

// indexPick picks a cell as an app does on an H3 or quadbin layer: the
// fullest cell of tile tileCell (its id as deck.gl's picked object has it:
// a BigInt for quadbin, written in decimal by String(), H3 hex), then asks
// getFeatures (pick) for its rows, and counts with featureIds on the table
// and query sources and with the client's picked-cells spatial filter;
// for quadbin, the table widget's first cell ids as the page reads them.
async function indexPick(tableSource, querySource, tileCell, type) {
  const src = await tableSource;
  const tile = await fetchSpatialTile(src, tileCell);
  if (!tile.top) throw new Error(`tile ${tileCell}: no cells (${tile.status} ${tile.body ?? ''})`);
  const id = type === 'quadbin' ? BigInt('0x' + tile.top.id).toString() : tile.top.id;
  const ws = src.widgetSource;
  const sel = {featureIds: [id], geometryType: 'polygons'};
  return {
    id,
    tileN: tile.top.value,
    picked: await ws.getFeatures({columns: ['name'], dataType: 'polygons', featureIds: [id], z: 0}),
    count: await ws.getFormula({operation: 'count', ...sel}),
    queryCount: await (await querySource).widgetSource.getFormula({operation: 'count', ...sel}),
    cellFilterCount: await ws.getFormula({operation: 'count', spatialFilter: {indexes: [id], type}}),
    // The cell column itself, as the table widget lists it: quadbin ids
    // exceed Number.MAX_SAFE_INTEGER, so they must come as strings.
    cells: type === 'quadbin' ? (await ws.getTable({columns: ['quadbin'], sortBy: 'quadbin', limit: 3})).rows.map(
      (r) => ({type: typeof r.quadbin, id: String(r.quadbin), big: BigInt(r.quadbin).toString()})) : [],
  };
}

if (quadbinTable && quadbinQuery) {
  // The root tile's cells are at level 4, coarser than the data's (8).
  await check('quadbinPick', () => indexPick(
    quadbinTableSource({...cfg, tableName: quadbinTable, aggregationExp: 'count(*) AS n', aggregationResLevel: 4}),
    quadbinQuerySource({...cfg, sqlQuery: quadbinQuery, aggregationExp: 'count(*) AS n'}),
    '480fffffffffffff', 'quadbin'));
}

if (h3Table && h3Query && h3PickTile) {
  // A resolution 0 tile whose cells are at the data's resolution (3).
  await check('h3Pick', () => indexPick(
    h3TableSource({...cfg, tableName: h3Table, aggregationExp: 'count(*) AS n', aggregationResLevel: 3}),
    h3QuerySource({...cfg, sqlQuery: h3Query, aggregationExp: 'count(*) AS n'}),
    h3PickTile, 'h3'));
}

if (widgets) {
  const w = widgets;
  // Widget sources as an app gets them: from the map sources.
  let byTable, byQuery;
  await check('widgetSources', async () => {
    byTable = (await vectorTableSource({...cfg, tableName: table})).widgetSource;
    byQuery = (await vectorQuerySource({...cfg, sqlQuery: querySQL, queryParameters: queryParams})).widgetSource;
    return {};
  });
  if (byTable && byQuery) {
    await check('widgetFormula', async () => ({
      count: await byTable.getFormula({column: '*', operation: 'count'}),
      sum: await byTable.getFormula({column: w.number, operation: 'sum'}),
      filtered: await byTable.getFormula({operation: 'count', filters: w.filter}),
      inPolygon: await byTable.getFormula({operation: 'count', spatialFilter: w.polygon}),
      // The widget's own filter does not apply to itself.
      ownFilter: await byTable.getFormula({
        operation: 'count',
        filters: ownFilters(w.filter, 'widget-1'),
        filterOwner: 'widget-1',
      }),
    }));
    await check('widgetQueryFormula', async () => ({
      count: await byQuery.getFormula({operation: 'count'}),
    }));
    await check('widgetCategories', async () => ({
      rows: await byTable.getCategories({column: w.category, operation: 'count', othersThreshold: 3}),
    }));
    await check('widgetHistogram', async () => ({
      bins: await byTable.getHistogram({column: w.number, operation: 'count', ticks: w.ticks}),
    }));
    await check('widgetRange', async () => ({
      range: await byTable.getRange({column: w.number}),
    }));
    await check('widgetScatter', async () => {
      const points = await byTable.getScatter({xAxisColumn: w.number, yAxisColumn: w.number});
      return {count: points.length, first: points[0]};
    });
    await check('widgetTable', async () => byTable.getTable({
      columns: [w.label, w.number],
      sortBy: w.number,
      sortDirection: 'desc',
      limit: 5,
      offset: 2,
    }));
    await check('widgetTimeSeries', async () => {
      const src = (await vectorQuerySource({...cfg, sqlQuery: w.timeQuery})).widgetSource;
      return src.getTimeSeries({column: w.timeColumn, stepSize: 'year', operation: 'count'});
    });
    await check('widgetAggregations', async () => ({
      list: (await byTable.getAggregations({
        aggregations: [{column: w.number, operation: 'sum', alias: 'Total'}, {column: '*', operation: 'count', alias: 'n'}],
      })).rows,
      string: (await byTable.getAggregations({aggregations: `sum(${w.number}) AS Total, count(*) AS n`})).rows,
    }));
    await check('widgetPick', async () => {
      // Tiles asked for _carto_feature_id carry one per feature; getFeatures
      // (the pick model) returns that feature's columns, and featureIds
      // restrict the other models to it.
      const src = await vectorTableSource({...cfg, tableName: table, columns: [w.label, '_carto_feature_id']});
      const url = src.tiles[0].replace('{z}', 0).replace('{x}', 0).replace('{y}', 0);
      const res = await fetch(url, {headers: {Authorization: `Bearer ${cfg.accessToken}`}});
      const vt = new VectorTile(new PbfReader(new Uint8Array(await res.arrayBuffer())));
      const props = Object.values(vt.layers)[0].feature(0).properties;
      const id = props._carto_feature_id;
      const picked = await src.widgetSource.getFeatures({columns: [w.label], dataType: 'polygons', featureIds: [id], z: 0});
      const count = await src.widgetSource.getFormula({operation: 'count', featureIds: [id], geometryType: 'polygons'});
      return {label: props[w.label], id, picked, count};
    });
    await check('widgetExtent', async () => ({
      table: (await byTable.getExtent({filters: w.filter})).bbox,
      query: (await byQuery.getExtent()).bbox,
    }));
    await check('widgetPost', async () => {
      // Padding values that match nothing push the URL past 2048 characters.
      const filters = structuredClone(w.filter);
      const col = Object.keys(filters)[0];
      const values = filters[col].in.values;
      for (let i = 0; i < 200; i++) values.push(`no such value ${i}`);
      return {count: await byTable.getFormula({operation: 'count', filters})};
    });
    await check('widgetUnknownColumn', async () => {
      try {
        await byTable.getFormula({column: 'meridian_no_such_column', operation: 'sum'});
      } catch (err) {
        return {error: {name: err.name, message: err.message}};
      }
      throw new Error('getFormula on a missing column succeeded');
    });
    if (deniedToken) {
      await check('widgetDenied', async () => {
        const denied = new WidgetQuerySource({
          ...cfg,
          accessToken: deniedToken,
          sqlQuery: querySQL,
          queryParameters: queryParams,
          spatialDataColumn: 'geom',
          spatialDataType: 'geo',
        });
        try {
          await denied.getFormula({operation: 'count'});
        } catch (err) {
          return {error: {name: err.name, message: err.message}};
        }
        throw new Error('a widget on a query the token does not grant succeeded');
      });
    }
  }
}

// ownFilters marks every filter of filters as owned by owner.
function ownFilters(filters, owner) {
  const out = structuredClone(filters);
  for (const col of Object.keys(out)) {
    for (const type of Object.keys(out[col])) out[col][type].owner = owner;
  }
  return out;
}

process.stdout.write(JSON.stringify(report, null, 1) + '\n');
process.exitCode = report.ok ? 0 : 1;
