// style.js: the kepler layer configs the Builder writes, in the shape
// @carto/api-client's parseMap reads (PLATFORM.md §4), and the palettes.
import * as cartocolor from 'cartocolor';

// Palettes offered for numeric (sequential) and category (qualitative)
// colouring, from CARTOColors.
export const SEQUENTIAL = ['Sunset', 'SunsetDark', 'Teal', 'Emrld', 'BluYl', 'Burg', 'PurpOr', 'OrYel', 'Mint', 'Magenta', 'TealGrn', 'Temps'];
export const QUALITATIVE = ['Bold', 'Prism', 'Vivid', 'Safe', 'Pastel', 'Antique'];

// palette returns n colours (#rrggbb) of a CARTOColors scheme.
export function palette(name, n) {
  const scheme = cartocolor[name];
  if (!scheme) return [];
  const sizes = Object.keys(scheme).map(Number).filter(Number.isFinite).sort((a, b) => a - b);
  const size = sizes.find((s) => s >= n) ?? sizes[sizes.length - 1];
  return scheme[size].slice(0, Math.max(n, 1));
}

export const colorRange = (name, n, type) => ({
  name, type, category: 'CARTO', colors: palette(name, n),
});

export function hexToRGB(hex) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex || '');
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [0, 0, 0];
}
export const rgbToHex = (c) => '#' + (c || [0, 0, 0]).slice(0, 3).map((v) => Number(v).toString(16).padStart(2, '0')).join('');

// Default layer colours, one per new layer in turn.
const LAYER_COLORS = [[18, 147, 154], [231, 63, 116], [127, 60, 141], [242, 183, 1], [57, 105, 172], [17, 165, 121]];

// layerTypeOf is the layer type fetchMap draws a dataset with.
export function layerTypeOf(dataset) {
  if (dataset.geoColumn?.startsWith('h3:')) return 'h3';
  if (dataset.geoColumn?.startsWith('quadbin:')) return 'quadbin';
  return 'mvt';
}

// newLayer is a layer config for dataset, the n-th of the map.
export function newLayer(dataset, n) {
  return {
    id: `layer-${Math.random().toString(36).slice(2, 8)}`,
    type: layerTypeOf(dataset),
    config: {
      dataId: dataset.id,
      label: dataset.label || dataset.source.slice(0, 60),
      color: LAYER_COLORS[n % LAYER_COLORS.length],
      isVisible: true,
      columns: {},
      visConfig: {
        opacity: 0.8, strokeOpacity: 0.9, filled: true, stroked: true, thickness: 0.5,
        strokeColor: [255, 255, 255], radius: 4, enable3d: false, elevationScale: 1,
        colorRange: colorRange('Sunset', 6, 'sequential'),
        strokeColorRange: colorRange('Sunset', 6, 'sequential'),
        radiusRange: [2, 20], heightRange: [0, 500000], sizeRange: [0, 10],
      },
      textLabel: [],
    },
    visualChannels: {colorField: null, colorScale: 'quantile', sizeField: null, sizeScale: 'linear', radiusField: null, radiusScale: 'sqrt', heightField: null, heightScale: 'linear'},
  };
}

// isNumeric reports whether a column type (PostgreSQL or CARTO schema) is a number.
export const isNumeric = (type) => /^(number|real|integer|int|int2|int4|int8|float4|float8|numeric|double precision|bigint|smallint)/i.test(type || '');
export const isTime = (type) => /^(timestamp|date|time)/i.test(type || '');

// fieldOf is the kepler field of a column: {name, type: real|integer|string|timestamp}.
export function fieldOf(col) {
  if (!col) return null;
  const t = isNumeric(col.type) ? (/int/i.test(col.type) ? 'integer' : 'real') : isTime(col.type) ? 'timestamp' : 'string';
  return {name: col.name, type: t};
}

// colorBy sets a layer's fill colour channel: a numeric column with a
// quantile or quantize scale, a text column with categories (ordinal);
// null for a single colour.
export function colorBy(layer, col, {scale, palette: pal, steps = 6} = {}) {
  const l = structuredClone(layer);
  if (!col) {
    l.visualChannels.colorField = null;
    return l;
  }
  const field = fieldOf(col);
  const categorical = field.type === 'string';
  const s = categorical ? 'ordinal' : (scale && scale !== 'ordinal' ? scale : 'quantile');
  const name = pal || (categorical ? 'Bold' : 'Sunset');
  l.visualChannels.colorField = field;
  l.visualChannels.colorScale = s;
  l.config.visConfig.colorRange = colorRange(name, categorical ? 10 : steps, categorical ? 'qualitative' : 'sequential');
  return l;
}

// emptyConfig is a new map's keplerMapConfig.
export function emptyConfig(style = 'meridian-light') {
  return {
    version: 'v1',
    config: {
      filters: {},
      mapState: {latitude: 20, longitude: 0, zoom: 1.5, pitch: 0, bearing: 0, dragRotate: false},
      mapStyle: {styleType: `custom:${style}`, visibleLayerGroups: {}},
      customBaseMaps: {customStyle: basemapStyle(style)},
      visState: {layers: [], layerBlending: 'normal', interactionConfig: {tooltip: {enabled: true, fieldsToShow: {}}}},
      widgets: [], sqlParameters: [], popupSettings: {layers: {}}, legendSettings: {layers: {}},
    },
  };
}

// BASEMAPS are the offline styles Meridian serves (control/basemaps).
export const BASEMAPS = [
  {id: 'meridian-light', label: 'Light'},
  {id: 'meridian-dark', label: 'Dark'},
];

export const basemapStyle = (id) => ({
  id, label: BASEMAPS.find((b) => b.id === id)?.label || id,
  url: `${location.origin}/basemap/styles/${id}.json`, customAttribution: 'Natural Earth',
});

// basemapOf is the basemap id of a config (meridian-light by default).
export function basemapOf(cfg) {
  const t = cfg?.config?.mapStyle?.styleType || '';
  return t.startsWith('custom:') ? t.slice('custom:'.length) : 'meridian-light';
}
