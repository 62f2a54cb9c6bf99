// editor.jsx: the map editor. The draft is the map's datasets and its
// keplerMapConfig; every change is saved (PATCH, debounced) and drawn
// through the same steps fetchMap takes. Widgets cross-filter each other
// and the map.
import {useEffect, useMemo, useRef, useState} from 'preact/hooks';
import {createViewportSpatialFilter} from '@carto/api-client';
import {maps, dataToken, apiBaseUrl, users as listUsers} from './api.js';
import {MapView, captureThumbnail} from './mapview.jsx';
import {draftDocument, renderDraft} from './render.js';
import {newLayer, basemapStyle, basemapOf, BASEMAPS, isNumeric, isTime} from './style.js';
import {AddData} from './adddata.jsx';
import {LayerStyle, columnsOf} from './layerstyle.jsx';
import {Widget, WIDGET_TYPES} from './widgets.jsx';
import {Legend} from './legend.jsx';
import {SharePanel} from './share.jsx';
import {AddressSearch, fetchIsolines, isolineDataset} from './lds.jsx';
import {ParametersPanel} from './paramspanel.jsx';
import {bindParams} from './params.js';

const SAVE_DELAY = 600;

// The maps list shows a picture of each map, captured here after a save
// (at most every 20 s) and on publish.
const THUMBNAIL_EVERY = 20_000;
let lastThumbnail = 0;
function refreshThumbnail(id) {
  if (Date.now() - lastThumbnail < THUMBNAIL_EVERY) return;
  lastThumbnail = Date.now();
  // After the frame that draws the saved state.
  setTimeout(() => captureThumbnail().then((b) => b && maps.thumbnail(id, b)).catch(() => {}), 1500);
}

export function Editor({id, me}) {
  const [map, setMap] = useState(null);
  const [token, setToken] = useState(null);
  const [error, setError] = useState('');
  const [save, setSave] = useState('saved');
  const [saveError, setSaveError] = useState('');
  const [rendered, setRendered] = useState(null);
  const [renderError, setRenderError] = useState('');
  const [filters, setFilters] = useState({});
  const [panel, setPanel] = useState('layers');
  const [selected, setSelected] = useState(null);
  const [adding, setAdding] = useState(false);
  const [bbox, setBbox] = useState(null);
  const [isoMode, setIsoMode] = useState(null); // 'car' | 'walk' while waiting for a click
  const [isoNote, setIsoNote] = useState(null);
  const lastSaved = useRef(null);
  const timer = useRef(null);
  const pending = useRef(null);

  useEffect(() => {
    maps.get(id).then(async (m) => {
      if (!m.canEdit) {
        location.replace(`/map/${encodeURIComponent(id)}`);
        return;
      }
      const t = await dataToken();
      lastSaved.current = JSON.stringify({k: m.keplerMapConfig, d: m.datasets, t: m.title});
      setMap(m);
      setToken(t);
      if (!t) setError('Your role cannot read data (the data APIs need the editor role).');
    }).catch((e) => setError(e.status === 404 ? 'This map does not exist, or it is not shared with you.' : e.message));
  }, [id]);

  // Draw the draft whenever what it shows changes.
  const drawKey = map && JSON.stringify([map.datasets, map.keplerMapConfig.config.visState, map.keplerMapConfig.config.mapStyle, filters]);
  useEffect(() => {
    if (!map || !token) return undefined;
    let stale = false;
    renderDraft(draftDocument(map, filters), {accessToken: token, apiBaseUrl: apiBaseUrl()})
      .then((r) => {
        if (stale) return;
        setRendered(r);
        setRenderError(r.errors.map((e) => e.message).join(' '));
      })
      .catch((e) => !stale && setRenderError(e.message));
    return () => { stale = true; };
  }, [drawKey, token]);

  // update applies fn to a copy of the draft and schedules the save.
  const update = (fn) => {
    setMap((m) => {
      const next = structuredClone(m);
      fn(next);
      scheduleSave(next);
      return next;
    });
  };
  const scheduleSave = (next) => {
    pending.current = next;
    setSave('unsaved');
    clearTimeout(timer.current);
    timer.current = setTimeout(flush, SAVE_DELAY);
  };
  const flush = async () => {
    const next = pending.current;
    if (!next) return;
    const key = JSON.stringify({k: next.keplerMapConfig, d: next.datasets, t: next.title});
    if (key === lastSaved.current) {
      setSave('saved');
      return;
    }
    setSave('saving');
    try {
      await maps.patch(next.id, {title: next.title, datasets: next.datasets, keplerMapConfig: next.keplerMapConfig});
      lastSaved.current = key;
      refreshThumbnail(next.id);
      if (pending.current === next) {
        pending.current = null;
        setSave('saved');
        setSaveError('');
      }
    } catch (e) {
      // Nothing is saved half: the server refused the whole change; the
      // draft here keeps it, and the message says what to fix.
      setSave('error');
      setSaveError(e.message);
    }
  };
  useEffect(() => {
    const beforeUnload = (e) => {
      if (pending.current) {
        flush();
        e.preventDefault();
      }
    };
    window.addEventListener('beforeunload', beforeUnload);
    return () => window.removeEventListener('beforeunload', beforeUnload);
  }, []);

  const cfg = map?.keplerMapConfig.config;
  const layersCfg = cfg?.visState.layers || [];
  const datasetOf = (dataId) => rendered?.datasets.find((d) => d.id === dataId) || map?.datasets.find((d) => d.id === dataId);
  const tooltipOf = (layer) => (cfg?.visState.interactionConfig.tooltip.fieldsToShow[layer.config.dataId] || []).map((f) => f.name);
  const layerIndex = useMemo(() => Object.fromEntries(layersCfg.map((l) => [l.id, l])), [layersCfg]);
  const spatialFilter = useMemo(() => (bbox ? createViewportSpatialFilter(bbox) : undefined), [bbox && bbox.join(',')]);

  if (error) return <div class="page"><div class="note error" role="alert">{error}</div><a href="/maps">Back to maps</a></div>;
  if (!map) return <div class="page muted">Loading the map…</div>;

  const addIsolines = async (origin) => {
    const mode = isoMode;
    setIsoMode(null);
    setIsoNote({kind: '', text: 'Computing isolines…'});
    try {
      const iso = await fetchIsolines(token, origin, mode, [300, 600, 900]);
      const ds = isolineDataset(iso, origin, mode);
      ds.connectionName = map.datasets[0]?.connectionName || 'local';
      await addDataset(ds, (l) => {
        l.config.visConfig.opacity = 0.35;
        l.visualChannels.colorField = {name: 'minutes', type: 'integer'};
        l.visualChannels.colorScale = 'quantize';
        l.config.visConfig.colorRange = {name: 'Teal', type: 'sequential', category: 'CARTO', colors: ['#d1eeea', '#68abb8', '#2a5674']};
      });
      setIsoNote({kind: 'ok', text: `Added isolines of 5, 10 and 15 minutes by ${mode}.`});
    } catch (e) {
      setIsoNote({kind: 'error', text: e.message});
    }
  };
  const addDataset = async (ds, style) => {
    const l = newLayer(ds, layersCfg.length);
    style?.(l);
    l.config.label = uniqueLabel(l.config.label, layersCfg.map((x) => x.config.label));
    const fields = (ds.columns || []).slice(0, 3).map((name) => ({name, format: null}));
    const next = structuredClone(map);
    next.datasets.push(ds);
    bindParams(next.datasets, next.keplerMapConfig.config.sqlParameters);
    next.keplerMapConfig.config.visState.layers.unshift(l);
    next.keplerMapConfig.config.visState.interactionConfig.tooltip.fieldsToShow[ds.id] = fields;
    // Checked by the server (the source must exist and be readable) before it is kept.
    await maps.patch(map.id, {title: next.title, datasets: next.datasets, keplerMapConfig: next.keplerMapConfig});
    lastSaved.current = JSON.stringify({k: next.keplerMapConfig, d: next.datasets, t: next.title});
    setMap(next);
    setSelected(l.id);
  };
  const setLayer = (i, l) => update((m) => { m.keplerMapConfig.config.visState.layers[i] = l; });
  const moveLayer = (i, d) => update((m) => {
    const ls = m.keplerMapConfig.config.visState.layers;
    const j = i + d;
    if (j < 0 || j >= ls.length) return;
    [ls[i], ls[j]] = [ls[j], ls[i]];
  });
  const removeLayer = (i) => update((m) => {
    const ls = m.keplerMapConfig.config.visState.layers;
    const [gone] = ls.splice(i, 1);
    if (!ls.some((l) => l.config.dataId === gone.config.dataId)) {
      m.datasets = m.datasets.filter((d) => d.id !== gone.config.dataId);
      delete m.keplerMapConfig.config.visState.interactionConfig.tooltip.fieldsToShow[gone.config.dataId];
      m.keplerMapConfig.config.widgets = (m.keplerMapConfig.config.widgets || []).filter((w) => w.dataId !== gone.config.dataId);
      delete m.keplerMapConfig.config.filters[gone.config.dataId];
    }
  });
  const setFiltersOf = (dataId, f) => setFilters((all) => ({...all, [dataId]: f}));
  const publish = async () => {
    await flush();
    const m = await maps.publish(map.id);
    setMap((cur) => ({...cur, publishedAt: m.publishedAt, privacy: m.privacy, publicUrl: m.publicUrl}));
    captureThumbnail().then((b) => b && maps.thumbnail(map.id, b)).catch(() => {});
    return m;
  };

  return (
    <div class="editor">
      <aside class="sidebar">
        <div class="title-row">
          <a href="/maps" class="back" title="All maps" aria-label="All maps">←</a>
          <input class="map-title" type="text" aria-label="Map title" value={map.title} onInput={(e) => { const v = e.currentTarget.value; update((m) => { m.title = v; }); }} />
        </div>
        <div class="save-state" data-state={save} data-testid="save-state" role="status">
          {save === 'saved' ? 'All changes saved' : save === 'saving' ? 'Saving…' : save === 'unsaved' ? 'Unsaved changes' : 'Not saved'}
        </div>
        {save === 'error' && <div class="note error" role="alert" data-testid="save-error">{saveError} <button type="button" class="small" onClick={() => { pending.current = pending.current || map; flush(); }}>Retry</button></div>}
        <nav class="tabs" role="tablist">
          {['layers', 'widgets', 'parameters', 'map', 'share'].map((p) => <button key={p} type="button" role="tab" aria-selected={panel === p} onClick={() => setPanel(p)}>{p[0].toUpperCase() + p.slice(1)}</button>)}
        </nav>
        {panel === 'layers' && <section class="panel">
          <div class="panel-head"><h2>Layers</h2><button type="button" class="primary small" onClick={() => setAdding(true)}>Add source</button></div>
          {layersCfg.length === 0 && <p class="muted">No layers yet: add a table or a SQL query.</p>}
          <ol class="layers">
            {layersCfg.map((l, i) => (
              <li key={l.id} class={selected === l.id ? 'open' : ''} data-layer-id={l.id}>
                <div class="layer-row">
                  <input type="checkbox" title="Visible" aria-label={`Show ${l.config.label}`} checked={l.config.isVisible} onChange={(e) => { const v = e.currentTarget.checked; update((m) => { m.keplerMapConfig.config.visState.layers[i].config.isVisible = v; }); }} />
                  <button type="button" class="layer-name" onClick={() => setSelected(selected === l.id ? null : l.id)}>{l.config.label}</button>
                  <span class="muted small">{l.type}</span>
                  <button type="button" class="icon" title="Move up" aria-label="Move up" onClick={() => moveLayer(i, -1)}>↑</button>
                  <button type="button" class="icon" title="Move down" aria-label="Move down" onClick={() => moveLayer(i, 1)}>↓</button>
                  <button type="button" class="icon" title="Remove layer" aria-label={`Remove ${l.config.label}`} onClick={() => removeLayer(i)}>×</button>
                </div>
                {selected === l.id && <LayerStyle layer={l} dataset={datasetOf(l.config.dataId)} tooltip={tooltipOf(l)}
                  onChange={(nl) => setLayer(i, nl)}
                  onTooltip={(names) => update((m) => { m.keplerMapConfig.config.visState.interactionConfig.tooltip.fieldsToShow[l.config.dataId] = names.map((name) => ({name, format: null})); })} />}
              </li>
            ))}
          </ol>
        </section>}
        {panel === 'widgets' && <WidgetsPanel map={map} datasetOf={datasetOf} update={update} />}
        {panel === 'parameters' && <ParametersPanel map={map} update={update} />}
        {panel === 'map' && <section class="panel">
          <h2>Basemap</h2>
          <div class="basemaps">
            {BASEMAPS.map((b) => <label class="check" key={b.id}><input type="radio" name="basemap" value={b.id} checked={basemapOf(map.keplerMapConfig) === b.id}
              onChange={() => update((m) => { m.keplerMapConfig.config.mapStyle.styleType = `custom:${b.id}`; m.keplerMapConfig.config.customBaseMaps = {customStyle: basemapStyle(b.id)}; })} /> {b.label}</label>)}
          </div>
          <h2>Isolines</h2>
          <p class="muted">Areas reachable within 5, 10 and 15 minutes of a point, as a layer.</p>
          <div class="actions">
            <button type="button" class="small" data-testid="isoline-car" onClick={() => setIsoMode('car')}>By car…</button>
            <button type="button" class="small" onClick={() => setIsoMode('walk')}>On foot…</button>
          </div>
          {isoMode && <div class="note" role="status">Click the map where the isolines start.</div>}
          {isoNote && <div class={`note ${isoNote.kind}`} role={isoNote.kind === 'error' ? 'alert' : 'status'} data-testid="isoline-note">{isoNote.text}</div>}
          <h2>Interaction</h2>
          <label class="check"><input type="checkbox" checked={cfg.visState.interactionConfig.tooltip.enabled} onChange={(e) => { const v = e.currentTarget.checked; update((m) => { m.keplerMapConfig.config.visState.interactionConfig.tooltip.enabled = v; }); }} /> Tooltips on hover</label>
          <label>Description
            <textarea rows="3" value={map.description} onInput={(e) => { const v = e.currentTarget.value; setMap((m) => ({...m, description: v})); maps.patch(map.id, {description: v}).catch(() => {}); }} />
          </label>
        </section>}
        {panel === 'share' && <SharePanel map={map} me={me} onPublish={publish} onChange={(m) => setMap((cur) => ({...cur, ...m}))} />}
      </aside>
      <div class="map-area">
        <MapView
          style={rendered?.basemap?.props?.style || basemapStyle(basemapOf(map.keplerMapConfig)).url}
          view={cfg.mapState}
          layers={rendered?.layers}
          tooltipFields={(layerId) => (cfg.visState.interactionConfig.tooltip.enabled && layerIndex[layerId] ? tooltipOf(layerIndex[layerId]) : null)}
          onClick={isoMode ? addIsolines : undefined}
          onView={(v, m) => {
            const b = m.getBounds();
            setBbox([Math.max(-180, b.getWest()), Math.max(-85, b.getSouth()), Math.min(180, b.getEast()), Math.min(85, b.getNorth())]);
            update((mm) => { Object.assign(mm.keplerMapConfig.config.mapState, roundView(v)); });
          }}
        />
        {token && <AddressSearch token={token} />}
        {renderError && <div class="map-error note error" role="alert" data-testid="render-error">{renderError}</div>}
        <Legend layers={layersCfg} descriptors={rendered?.descriptors} />
        <div class="widgets-column" data-testid="widgets">
          {(cfg.widgets || []).map((w) => {
            const ds = datasetOf(w.dataId);
            return <Widget key={w.id} widget={w} source={ds?.data?.widgetSource} filters={filters[w.dataId] || {}} spatialFilter={spatialFilter}
              datasetLabel={ds?.label} onFilter={(f) => setFiltersOf(w.dataId, f)}
              onRemove={() => update((m) => { m.keplerMapConfig.config.widgets = m.keplerMapConfig.config.widgets.filter((x) => x.id !== w.id); })} />;
          })}
        </div>
      </div>
      {adding && <AddData token={token} params={cfg.sqlParameters || []} onAdd={addDataset} onClose={() => setAdding(false)} />}
    </div>
  );
}

const roundView = (v) => ({
  longitude: Math.round(v.longitude * 1e5) / 1e5, latitude: Math.round(v.latitude * 1e5) / 1e5,
  zoom: Math.round(v.zoom * 100) / 100, pitch: Math.round(v.pitch), bearing: Math.round(v.bearing),
});

function WidgetsPanel({map, datasetOf, update}) {
  const datasets = map.datasets;
  const [dataId, setDataId] = useState(datasets[0]?.id || '');
  const [type, setType] = useState('category');
  const [column, setColumn] = useState('');
  const [operation, setOperation] = useState('count');
  const cols = columnsOf(datasetOf(dataId));
  const wt = WIDGET_TYPES.find((w) => w.type === type);
  const usable = cols.filter((c) => (wt.numeric ? isNumeric(c.type) : wt.time ? isTime(c.type) || isNumeric(c.type) : true));
  useEffect(() => {
    if (!usable.some((c) => c.name === column)) setColumn(usable[0]?.name || '');
  }, [dataId, type, cols.length]);
  const add = (e) => {
    e.preventDefault();
    if (!dataId || !column) return;
    const w = {id: 'w-' + Math.random().toString(36).slice(2, 8), type, dataId, column, operation: type === 'formula' ? operation : 'count',
      title: `${wt.label}: ${column}`, ...(type === 'table' ? {columns: cols.slice(0, 4).map((c) => c.name)} : {})};
    update((m) => { m.keplerMapConfig.config.widgets = [...(m.keplerMapConfig.config.widgets || []), w]; });
  };
  return (
    <section class="panel">
      <h2>Widgets</h2>
      {datasets.length === 0 ? <p class="muted">Add a layer first.</p> : <form class="stack" onSubmit={add} aria-label="Add widget">
        <label>Source
          <select name="widget-dataset" value={dataId} onChange={(e) => setDataId(e.currentTarget.value)}>
            {datasets.map((d) => <option key={d.id} value={d.id}>{d.label || d.source.slice(0, 40)}</option>)}
          </select>
        </label>
        <label>Type
          <select name="widget-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
            {WIDGET_TYPES.map((w) => <option key={w.type} value={w.type}>{w.label}</option>)}
          </select>
        </label>
        <label>Column
          <select name="widget-column" value={column} onChange={(e) => setColumn(e.currentTarget.value)}>
            {usable.map((c) => <option key={c.name} value={c.name}>{c.name}</option>)}
          </select>
        </label>
        {type === 'formula' && <label>Operation
          <select name="widget-operation" value={operation} onChange={(e) => setOperation(e.currentTarget.value)}>
            {['count', 'sum', 'avg', 'min', 'max'].map((o) => <option key={o} value={o}>{o}</option>)}
          </select>
        </label>}
        <button type="submit" class="primary small" disabled={!column}>Add widget</button>
      </form>}
      <ul class="plain">
        {(map.keplerMapConfig.config.widgets || []).map((w) => <li key={w.id}>{w.title}</li>)}
      </ul>
    </section>
  );
}

// uniqueLabel numbers a new layer's name when the map has one by that
// name already (two queries on one table): "Query on t", "Query on t 2".
export function uniqueLabel(label, taken) {
  if (!taken.includes(label)) return label;
  let n = 2;
  while (taken.includes(`${label} ${n}`)) n++;
  return `${label} ${n}`;
}
