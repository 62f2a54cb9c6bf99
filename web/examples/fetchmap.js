// A customer's app, as CARTO documents it: fetchMap of a published map,
// drawn by deck.gl (no basemap, no Meridian code). compat/fetchmap-page.mjs
// serves it from another origin and checks that the canvas shows the
// layers. Reads the map id and API base URL from the page's query string.
import {Deck} from '@deck.gl/core';
import {fetchMap} from '@deck.gl/carto';

const params = new URLSearchParams(location.search);
const status = document.getElementById('status');

try {
  const {initialViewState, layers, title} = await fetchMap({cartoMapId: params.get('map'), apiBaseUrl: params.get('api')});
  status.textContent = `${title}: ${layers.length} layers`;
  window.__deck = new Deck({
    canvas: 'map', initialViewState, controller: true, layers,
    deviceProps: {webgl: {preserveDrawingBuffer: true}},
  });
  window.__layers = layers.map((l) => ({id: l.id, type: l.constructor.layerName}));
} catch (err) {
  status.textContent = 'fetchMap failed: ' + err.message;
  window.__error = String(err.message || err);
}
