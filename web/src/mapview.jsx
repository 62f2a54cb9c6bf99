// mapview.jsx: MapLibre GL JS with deck.gl drawn over it (MapboxOverlay),
// the way a customer's app combines the basemap and fetchMap's layers.
import {useEffect, useRef} from 'preact/hooks';
// MapLibre's CSP build: its worker is a file of its own (no blob: code),
// which the page names.
import maplibregl from 'maplibre-gl/dist/maplibre-gl-csp.js';
import {MapboxOverlay} from '@deck.gl/mapbox';

// MapLibre's worker is published beside the bundle under a hashed name;
// the page names it (index.html, <link id="maplibre-worker">).
const workerLink = typeof document !== 'undefined' && document.getElementById('maplibre-worker');
if (workerLink) maplibregl.setWorkerUrl(workerLink.href);

// tooltipHTML renders a picked feature's chosen fields as text lines.
function tooltipOf(fieldsOf) {
  return (info) => {
    if (!info.object || !info.layer) return null;
    const props = info.object.properties || info.object;
    const fields = fieldsOf(info.layer.id);
    if (!fields || fields.length === 0) return null;
    const text = fields.map((f) => `${f}: ${formatValue(props[f])}`).join('\n');
    return {text, className: 'deck-tooltip'};
  };
}

export const formatValue = (v) => (v === null || v === undefined ? '–' : typeof v === 'number' ? v.toLocaleString() : String(v));

// MapView draws style (a MapLibre style URL or object) under layers. view
// is the initial {longitude, latitude, zoom, pitch, bearing}; onView
// reports the view after every move; onReady(map) once the basemap loaded.
export function MapView({style, view, layers, tooltipFields, onView, onReady, onClick, interactive = true}) {
  const el = useRef(null);
  const state = useRef({});
  const fieldsRef = useRef(tooltipFields);
  fieldsRef.current = tooltipFields;
  const onViewRef = useRef(onView);
  onViewRef.current = onView;
  const onClickRef = useRef(onClick);
  onClickRef.current = onClick;

  useEffect(() => {
    const map = new maplibregl.Map({
      container: el.current, style: style || {version: 8, sources: {}, layers: [{id: 'bg', type: 'background', paint: {'background-color': '#e9eef2'}}]},
      center: [view?.longitude ?? 0, view?.latitude ?? 20], zoom: view?.zoom ?? 1.5, pitch: view?.pitch ?? 0, bearing: view?.bearing ?? 0,
      attributionControl: {compact: true}, interactive,
      // Labels appear at once: a fade animates (and redraws) for 300 ms.
      fadeDuration: 0,
    });
    map.addControl(new maplibregl.NavigationControl({visualizePitch: true}), 'top-right');
    // Interleaved: deck.gl draws in MapLibre's WebGL context (one context,
    // one canvas: half the GPU work of an overlay canvas, which counts
    // where WebGL runs on the CPU).
    //
    // The first view's layers are drawn once, when all their tiles are in
    // (firstView): drawn as each tile arrives, every arrival redraws all
    // the loaded tiles, and where WebGL runs on the CPU (SwiftShader, no
    // GPU) each of those frames takes seconds and holds up the page.
    const first = firstView(map);
    const overlay = new MapboxOverlay({interleaved: true, layers: layers || [], getTooltip: tooltipOf((id) => fieldsRef.current?.(id)), layerFilter: first.filter});
    first.watch(overlay);
    map.addControl(overlay);
    map.on('moveend', () => {
      const c = map.getCenter();
      onViewRef.current?.({longitude: c.lng, latitude: c.lat, zoom: map.getZoom(), pitch: map.getPitch(), bearing: map.getBearing()}, map);
    });
    map.on('click', (e) => onClickRef.current?.([e.lngLat.lng, e.lngLat.lat]));
    map.once('load', () => onReady?.(map, overlay));
    state.current = {map, overlay, style};
    window.__meridianMap = map;
    window.__meridianOverlay = overlay;
    return () => {
      map.remove();
      state.current = {};
    };
  }, []);

  useEffect(() => {
    state.current.overlay?.setProps({layers: layers || []});
  }, [layers]);

  useEffect(() => {
    const s = state.current;
    if (s.map && style && s.style !== style) {
      s.map.setStyle(style);
      s.style = style;
    }
  }, [style]);

  return <div class="mapview" ref={el} data-testid="map" />;
}

// FIRST_VIEW_WAIT_MS bounds how long the first view's layers wait for
// their tiles before they are drawn as they come.
const FIRST_VIEW_WAIT_MS = 15000;

// firstView holds deck.gl's layers off the map (filter) until every tile
// of the first view is loaded, the user moves the map, or
// FIRST_VIEW_WAIT_MS passed: then they are drawn in one frame. The basemap
// draws meanwhile. Tiles load all the same (deck.gl updates the layers
// whether drawn or not). window.__meridianFirstView says when it drew
// ({releasedAt, drawnAt, reason}, performance.now() times): drawnAt is
// the MapLibre frame that drew the layers with every tile of the view.
function firstView(map) {
  const t0 = performance.now();
  const state = {held: true};
  window.__meridianFirstView = state;
  let overlay;
  const release = (reason) => {
    if (!state.held) return;
    state.held = false;
    state.reason = reason;
    state.releasedAt = performance.now();
    map.triggerRepaint();
  };
  const loaded = () => {
    const ls = overlay?._deck?.props.layers;
    return !!ls && ls.every((l) => l.isLoaded);
  };
  const onRender = () => {
    if (state.held) {
      if (loaded()) release('loaded');
      else if (performance.now() - t0 > FIRST_VIEW_WAIT_MS) release('timeout');
    } else if (loaded() && map.areTilesLoaded()) {
      state.drawnAt = performance.now();
      map.off('render', onRender);
    }
  };
  map.on('render', onRender);
  map.once('movestart', () => release('moved'));
  const timer = setTimeout(() => release('timeout'), FIRST_VIEW_WAIT_MS);
  map.once('remove', () => clearTimeout(timer));
  return {filter: () => !state.held, watch: (o) => { overlay = o; }};
}

// flyTo moves the map of a MapView (the last one made) to view.
export function jumpTo(view) {
  window.__meridianMap?.jumpTo({center: [view.longitude, view.latitude], zoom: view.zoom});
}

// captureThumbnail returns a PNG of the map as drawn (basemap and
// layers share one canvas), read in the frame that draws it: the canvas
// does not keep its pixels after the frame.
export function captureThumbnail(width = 480, height = 300) {
  const map = window.__meridianMap;
  if (!map) return Promise.resolve(null);
  return new Promise((resolve) => {
    map.once('render', () => {
      const c = map.getCanvas();
      const out = document.createElement('canvas');
      out.width = width;
      out.height = height;
      const s = Math.max(width / c.width, height / c.height);
      const w = c.width * s, h = c.height * s;
      out.getContext('2d').drawImage(c, (width - w) / 2, (height - h) / 2, w, h);
      out.toBlob(resolve, 'image/png');
    });
    map.triggerRepaint();
  });
}
