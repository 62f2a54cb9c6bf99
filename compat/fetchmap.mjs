// fetchmap.mjs: the real @carto/api-client fetchMap against Meridian's
// published maps, as a developer's deck.gl app calls it. Run by the Go
// test edge/fetchmap_test.go.
//
// Environment:
//   API_BASE_URL  e.g. http://127.0.0.1:8080/api
//   MAPS          JSON array of {name, id, headers?, cells?}: cells names the
//                 spatial-index cell (hex) whose tile to fetch per layer id
//
// Prints one JSON report: per map, what fetchMap returned (or threw), and
// for each layer one tile fetched from its TileJSON with the map token and
// decoded.

import {fetchMap, CartoAPIError} from '@carto/api-client';
import {VectorTile} from '@mapbox/vector-tile';
import {PbfReader} from 'pbf';

const apiBaseUrl = process.env.API_BASE_URL;
const maps = JSON.parse(process.env.MAPS || '[]');

const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const entry = {method: (init.method || 'GET').toUpperCase(), path: url.pathname, host: url.host, status: 0};
  requests.push(entry);
  const res = await realFetch(input, init);
  entry.status = res.status;
  return res;
};

function describeError(err) {
  const out = {name: err?.name ?? typeof err, message: String(err?.message ?? err)};
  if (err instanceof CartoAPIError) {
    out.status = err.response?.status ?? 0;
    out.requestType = err.errorContext?.requestType ?? '';
  }
  return out;
}

async function vectorTile(url, token) {
  const res = await fetch(url, {headers: {Authorization: `Bearer ${token}`}});
  const buf = new Uint8Array(await res.arrayBuffer());
  const out = {status: res.status, bytes: buf.length, features: 0, keys: []};
  if (res.status !== 200) {
    out.body = new TextDecoder().decode(buf).slice(0, 300);
    return out;
  }
  const vt = new VectorTile(new PbfReader(buf));
  const keys = new Set();
  for (const layer of Object.values(vt.layers)) {
    out.features += layer.length;
    for (let i = 0; i < layer.length; i++) {
      for (const k of Object.keys(layer.feature(i).properties)) keys.add(k);
    }
  }
  out.keys = [...keys].sort();
  return out;
}

// spatialTile decodes CARTO's spatial-index tile enough to count cells.
async function spatialTile(url, token) {
  const res = await fetch(url, {headers: {Authorization: `Bearer ${token}`}});
  const buf = new Uint8Array(await res.arrayBuffer());
  const out = {status: res.status, bytes: buf.length, cells: 0};
  if (res.status !== 200) {
    out.body = new TextDecoder().decode(buf).slice(0, 300);
    return out;
  }
  new PbfReader(buf).readFields((tag, obj, pbf) => {
    if (tag === 2) {
      pbf.readFields((tag, cells, pbf) => {
        if (tag === 1) {
          pbf.readFields((tag, ix, pbf) => {
            if (tag === 1) out.cells = pbf.readBytes().length / 8;
          }, {}, pbf.readVarint() + pbf.pos);
        }
      }, {}, pbf.readVarint() + pbf.pos);
    }
  }, {});
  return out;
}

const report = {maps: {}, requests};
for (const m of maps) {
  const entry = {};
  report.maps[m.name] = entry;
  try {
    const res = await fetchMap({cartoMapId: m.id, apiBaseUrl, headers: m.headers});
    entry.ok = true;
    entry.title = res.title;
    entry.tokenSet = Boolean(res.token);
    entry.initialViewState = res.initialViewState;
    entry.basemap = res.basemap ? {type: res.basemap.type, style: typeof res.basemap.props?.style === 'string' ? res.basemap.props.style : 'object'} : null;
    entry.popupSettings = res.popupSettings ?? null;
    entry.layers = [];
    for (const l of res.layers) {
      if (!l) {
        entry.layers.push(null); // parseMap logged why and dropped it
        continue;
      }
      const data = l.props.data;
      const tiles = data?.tiles ?? [];
      const layer = {
        type: l.type,
        id: l.props.id,
        pickable: Boolean(l.props.pickable),
        tiles0: tiles[0] ?? '',
        scheme: data?.scheme ?? null,
        accessTokenIsMapToken: data?.accessToken === res.token,
        fillColor: typeof l.props.getFillColor,
        fillScale: l.scales?.fillColor?.type ?? null,
        fillDomain: l.scales?.fillColor?.domain ?? null,
        tilestatsAttributes: (data?.tilestats?.layers?.[0]?.attributes ?? []).map((a) => a.attribute),
      };
      if (tiles[0]?.includes('{z}')) {
        layer.tile = await vectorTile(tiles[0].replace('{z}', '0').replace('{x}', '0').replace('{y}', '0'), data.accessToken);
      } else if (tiles[0]?.includes('{i}') && m.cells?.[l.props.id]) {
        layer.tile = await spatialTile(tiles[0].replace('{i}', m.cells[l.props.id]), data.accessToken);
      }
      entry.layers.push(layer);
    }
  } catch (err) {
    entry.ok = false;
    entry.error = describeError(err);
  }
}
process.stdout.write(JSON.stringify(report, null, 1) + '\n');
