// render.js: a map document → deck.gl layers, the way fetchMap does it.
//
// The editor draws the draft through the same steps @carto/api-client's
// fetchMap takes for a published map (fill in each dataset's TileJSON,
// fetch the tile stats its styling needs, parseMap, LayerFactory), so what
// the Builder shows is what a customer's app shows. The viewer calls
// @deck.gl/carto's fetchMap itself.
import {fetchMap, parseMap, fetchBasemapProps, _fillInMapDatasets as fillInMapDatasets, _fillInTileStats as fillInTileStats} from '@carto/api-client';
import {LayerFactory} from '@deck.gl/carto';
import {MVTLoader} from '@loaders.gl/mvt';

// Tile parsing runs in workers, as in a customer's app. loaders.gl would
// load them from a CDN (unpkg.com), which Meridian never needs: the page
// names the copies served beside the bundle (index.html, <link
// id="worker-…">). Without them tiles are parsed in the page, with the
// MVT loader that can (vector tile layers' default one only runs in a
// worker).
const WORKER_IDS = ['mvt', 'cartoSpatialTile', 'cartoPropertiesTile', 'cartoVectorTile', 'cartoRasterTile'];
const workerUrls = typeof document === 'undefined' ? {} : Object.fromEntries(
  WORKER_IDS.map((id) => [id, document.getElementById(`worker-${id}`)?.href]).filter(([, href]) => href));

export function noWorkers(layer) {
  const current = layer.props.loadOptions || {};
  if (Object.keys(workerUrls).length === WORKER_IDS.length) {
    const loadOptions = {...current};
    for (const [id, workerUrl] of Object.entries(workerUrls)) loadOptions[id] = {...current[id], workerUrl};
    return layer.clone({loadOptions});
  }
  const loadOptions = {...current, worker: false};
  const isMVT = (layer.props.loaders || []).some((l) => l.id === 'mvt' || l.name === 'Mapbox Vector Tile');
  return layer.clone(isMVT ? {loadOptions, loaders: [MVTLoader, ...layer.props.loaders.filter((l) => l.id !== 'mvt')]} : {loadOptions});
}

// draftDocument is the public-map document of a draft (datasets as
// fetchMap reads them), with filters the widgets set.
export function draftDocument(map, filters) {
  const keplerMapConfig = structuredClone(map.keplerMapConfig);
  keplerMapConfig.config.filters = filters || {};
  return {
    id: map.id, title: map.title, description: map.description, createdAt: map.createdAt, updatedAt: map.updatedAt,
    keplerMapConfig,
    datasets: map.datasets.map((d) => ({...structuredClone(d), providerId: 'postgres', format: 'tilejson'})),
  };
}

// renderDraft fills in a draft document with accessToken and returns
// {layers, descriptors, datasets, basemap, errors}: errors name the layers
// parseMap dropped and why.
//
// A dataset that cannot be loaded (its table was dropped, its query
// fails) takes only its own layers off the map: the others are drawn and
// the error names the dataset.
export async function renderDraft(doc, {accessToken, apiBaseUrl}) {
  const context = {accessToken, apiBaseUrl, headers: {}, mapId: doc.id};
  const errors = [];
  const failed = new Set();
  const basemapP = fetchBasemapProps({config: doc.keplerMapConfig.config, errorContext: {requestType: 'Basemap', mapId: doc.id}});
  await Promise.all(doc.datasets.map(async (d) => {
    try {
      await fillInMapDatasets({datasets: [d], keplerMapConfig: doc.keplerMapConfig}, context);
    } catch (err) {
      failed.add(d.id);
      d.loadError = firstLine(err);
      errors.push({dataId: d.id, message: `${d.label || d.source}: ${firstLine(err)}`});
    }
  }));
  const ok = {...doc, datasets: doc.datasets.filter((d) => !failed.has(d.id))};
  ok.keplerMapConfig = structuredClone(doc.keplerMapConfig);
  ok.keplerMapConfig.config.visState.layers = ok.keplerMapConfig.config.visState.layers.filter((l) => !failed.has(l.config.dataId));
  try {
    await fillInTileStats(ok, context);
  } catch (err) {
    errors.push({message: `Styling statistics: ${firstLine(err)}`});
  }
  let basemap;
  try {
    basemap = await basemapP;
  } catch (err) {
    errors.push({message: `Basemap: ${firstLine(err)}`});
  }
  const out = fromParsed(ok, parseMap(ok), basemap);
  out.errors.unshift(...errors);
  out.datasets = doc.datasets;
  return out;
}

// firstLine is the useful part of an @carto/api-client error (its
// message repeats the request context on the following lines).
function firstLine(err) {
  const msg = String(err?.message || err);
  const lines = msg.split('\n').map((l) => l.trim()).filter(Boolean);
  const detail = lines.find((l) => !/request failed$/i.test(l) && !/^(Connection|Map Id|Type|Source|Failed to connect)/.test(l));
  return detail || lines[0] || msg;
}

function fromParsed(doc, parsed, basemap) {
  const layersReverse = [...doc.keplerMapConfig.config.visState.layers].reverse();
  const errors = [];
  const layers = [];
  const descriptors = {};
  parsed.layers.forEach((d, i) => {
    const cfg = layersReverse[i];
    if (!d) {
      errors.push({layerId: cfg?.id, message: `Layer "${cfg?.config?.label || cfg?.id}" cannot be drawn (see the browser console).`});
      return;
    }
    descriptors[d.props.id] = d;
    try {
      layers.push(noWorkers(LayerFactory(d)));
    } catch (err) {
      errors.push({layerId: d.props.id, message: err.message});
    }
  });
  return {layers, descriptors, datasets: doc.datasets, basemap, errors, parsed};
}

// renderPublished loads a published map with fetchMap and makes its
// layers with @deck.gl/carto's LayerFactory: what @deck.gl/carto's own
// fetchMap does, keeping the layer descriptors (their scales make the
// legend).
export async function renderPublished(id, {apiBaseUrl}) {
  const res = await fetchMap({cartoMapId: id, apiBaseUrl});
  const descriptors = {};
  const layers = [];
  for (const d of res.layers) {
    if (!d) continue;
    descriptors[d.props.id] = d;
    layers.push(noWorkers(LayerFactory(d)));
  }
  return {...res, layers, descriptors};
}

// legendOf describes a layer's colours for the legend: {kind: 'single',
// color} | {kind: 'bins', field, items: [{color, label}]}.
export function legendOf(cfg, descriptor) {
  const scale = descriptor?.scales?.fillColor;
  const fmt = (v) => (typeof v === 'number' ? new Intl.NumberFormat(undefined, {maximumSignificantDigits: 3, notation: Math.abs(v) >= 1e5 ? 'compact' : 'standard'}).format(v) : String(v));
  if (!scale || !scale.field || !scale.range) return {kind: 'single', color: cfg.config.color};
  const colors = scale.range.map((c) => (typeof c === 'string' ? c : `rgb(${c.slice(0, 3).join(',')})`));
  const domain = scale.domain || [];
  if (scale.type === 'ordinal' || scale.type === 'point') {
    const items = domain.map((v, i) => ({color: colors[i % colors.length], label: fmt(v)}));
    if (domain.length > 0) items.push({color: colors[domain.length % colors.length] || '#aaa', label: 'Others'});
    return {kind: 'bins', field: scale.field.name, items: items.slice(0, 11)};
  }
  // quantile/quantize/custom: domain are the breaks; colour i covers [b(i-1), b(i)).
  let breaks = domain;
  if (scale.type === 'quantize' && domain.length === 2) {
    const [lo, hi] = domain;
    breaks = colors.slice(1).map((_, i) => lo + ((hi - lo) * (i + 1)) / colors.length);
  } else if (scale.type === 'quantile' && domain.length > colors.length) {
    breaks = domain.slice(1, colors.length);
  }
  const items = colors.map((c, i) => ({
    color: c,
    label: i === 0 ? `< ${fmt(breaks[0])}` : i >= breaks.length ? `≥ ${fmt(breaks[breaks.length - 1])}` : `${fmt(breaks[i - 1])} – ${fmt(breaks[i])}`,
  }));
  return {kind: 'bins', field: scale.field.name, items: items.slice(0, Math.max(breaks.length + 1, 1))};
}
