// viewer.jsx: /map/{id}, a published map for anyone it is shared with
// (anyone at all when public; no sign-in needed). It loads the map with
// @deck.gl/carto's fetchMap, as a developer's app does; widgets filter
// it with the map token.
import {useEffect, useMemo, useState} from 'preact/hooks';
import {createViewportSpatialFilter} from '@carto/api-client';
import {apiBaseUrl, APIError} from './api.js';
import {MapView} from './mapview.jsx';
import {renderPublished, renderDraft} from './render.js';
import {Widget} from './widgets.jsx';
import {Legend} from './legend.jsx';

async function publicDocument(id) {
  const res = await fetch(`/api/v3/maps/public/${encodeURIComponent(id)}`, {credentials: 'same-origin', headers: {Accept: 'application/json'}});
  if (res.status === 404) throw new APIError('This map does not exist, is not published, or is not shared with you.', 404);
  if (!res.ok) throw new APIError(`The map could not be loaded (${res.status}).`, res.status);
  return res.json();
}

export function Viewer({id, embed}) {
  const [doc, setDoc] = useState(null);
  const [res, setRes] = useState(null);
  const [error, setError] = useState('');
  const [filters, setFilters] = useState({});
  const [bbox, setBbox] = useState(null);

  useEffect(() => {
    Promise.all([publicDocument(id), renderPublished(id, {apiBaseUrl: apiBaseUrl()})])
      .then(([d, r]) => {
        setDoc(d);
        setRes(r);
        document.title = `${d.title} · Meridian`;
        window.__meridianViewerReady = true;
      })
      .catch((e) => setError(e.status === 404 || e.response?.status === 404 ? 'This map does not exist, is not published, or is not shared with you.' : e.message));
  }, [id]);

  // Widgets' filters: draw again through the same steps, with the map token.
  const key = JSON.stringify(filters);
  useEffect(() => {
    if (!doc || key === '{}') return;
    const d = structuredClone(doc);
    d.keplerMapConfig.config.filters = filters;
    renderDraft(d, {accessToken: doc.token, apiBaseUrl: apiBaseUrl()}).then((r) => setRes((cur) => ({...cur, layers: r.layers, datasets: r.datasets, descriptors: r.descriptors}))).catch((e) => setError(e.message));
  }, [key]);

  const spatialFilter = useMemo(() => (bbox ? createViewportSpatialFilter(bbox) : undefined), [bbox && bbox.join(',')]);
  if (error) return <div class="page"><div class="note error" role="alert" data-testid="viewer-error">{error}</div></div>;
  if (!doc || !res) return <div class="page muted">Loading the map…</div>;
  const cfg = doc.keplerMapConfig.config;
  const layersCfg = cfg.visState.layers;
  const byLayer = Object.fromEntries(res.layers.map((l) => [l.id, l]));
  const sourceOf = (dataId) => {
    const ds = res.datasets?.find((d) => d.id === dataId);
    if (ds) return ds.data?.widgetSource;
    const l = layersCfg.find((x) => x.config.dataId === dataId);
    return l && byLayer[l.id]?.props.data?.widgetSource;
  };
  const tooltip = cfg.visState.interactionConfig?.tooltip;
  return (
    <div class={'viewer' + (embed ? ' embed' : '')}>
      {!embed && <header class="viewer-bar"><h1>{doc.title}</h1><span class="muted">{doc.description}</span><span class="grow" /><a href="/maps">Meridian</a></header>}
      <div class="map-area">
        <MapView style={res.basemap?.props?.style} view={res.initialViewState} layers={res.layers}
          tooltipFields={(layerId) => {
            const l = layersCfg.find((x) => x.id === layerId);
            return tooltip?.enabled && l ? (tooltip.fieldsToShow?.[l.config.dataId] || []).map((f) => f.name) : null;
          }}
          onView={(v, m) => {
            const b = m.getBounds();
            setBbox([Math.max(-180, b.getWest()), Math.max(-85, b.getSouth()), Math.min(180, b.getEast()), Math.min(85, b.getNorth())]);
          }} />
        <Legend layers={layersCfg} descriptors={res.descriptors} />
        <div class="widgets-column">
          {(cfg.widgets || []).map((w) => <Widget key={w.id} widget={w} source={sourceOf(w.dataId)} filters={filters[w.dataId] || {}} spatialFilter={spatialFilter}
            onFilter={(f) => setFilters((all) => ({...all, [w.dataId]: f}))} />)}
        </div>
      </div>
    </div>
  );
}
