// sqlconsole.jsx: /data/sql, the SQL editor: Ctrl+Enter runs the query
// (read-only, through the SQL API), the last queries are kept in this
// browser, results export as CSV or GeoJSON (streamed by the server), and
// a result with geometries is drawn on a map, or becomes a Builder map.
import {useEffect, useMemo, useState} from 'preact/hooks';
import {vectorQuerySource} from '@carto/api-client';
import {VectorTileLayer} from '@deck.gl/carto';
import {catalog, dataToken, sql, maps, apiBaseUrl} from './api.js';
import {MapView, formatValue} from './mapview.jsx';
import {noWorkers} from './render.js';
import {emptyConfig, newLayer, basemapStyle} from './style.js';

const HISTORY = 'meridian.sqlHistory';
const loadHistory = () => {
  try {
    return JSON.parse(localStorage.getItem(HISTORY) || '[]');
  } catch {
    return [];
  }
};

export function SQLConsole({me}) {
  const [conns, setConns] = useState([]);
  const [conn, setConn] = useState('');
  const [token, setToken] = useState(null);
  const [q, setQ] = useState(() => loadHistory()[0] || 'SELECT * FROM public.countries LIMIT 100');
  const [history, setHistory] = useState(loadHistory);
  const [res, setRes] = useState(null);
  const [ran, setRan] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [layers, setLayers] = useState([]);

  useEffect(() => {
    catalog.connections().then((r) => {
      setConns(r.connections);
      setConn(r.connections[0]?.name || '');
    }).catch((e) => setError(e.message));
    dataToken().then(setToken).catch((e) => setError(e.message));
  }, []);

  const geoColumn = useMemo(() => (res?.schema || []).find((f) => /^geometry|^geography/i.test(f.type))?.name, [res]);

  const run = async () => {
    const text = q.trim().replace(/;\s*$/, '');
    if (!text || !token) return;
    setBusy(true);
    setError('');
    try {
      const r = await sql(token, conn, text);
      setRes(r);
      setRan(text);
      const h = [text, ...history.filter((x) => x !== text)].slice(0, 20);
      setHistory(h);
      localStorage.setItem(HISTORY, JSON.stringify(h));
    } catch (e) {
      setError(e.message);
      setRes(null);
    } finally {
      setBusy(false);
    }
  };

  // The result on a map: the same query as a deck.gl vector tile layer.
  useEffect(() => {
    if (!geoColumn || !ran || !token) {
      setLayers([]);
      return;
    }
    let stale = false;
    vectorQuerySource({connectionName: conn, sqlQuery: ran, spatialDataColumn: geoColumn, accessToken: token, apiBaseUrl: apiBaseUrl()})
      .then((data) => !stale && setLayers([noWorkers(new VectorTileLayer({id: 'sql-result', data, getFillColor: [231, 63, 116, 160], getLineColor: [120, 20, 60],
        getLineWidth: 1, lineWidthUnits: 'pixels', pointRadiusUnits: 'pixels', getPointRadius: 4, pickable: true}))]))
      .catch((e) => !stale && setError(e.message));
    return () => { stale = true; };
  }, [geoColumn, ran, token]);

  const exportAs = async (format) => {
    const params = new URLSearchParams({q: ran, format});
    const r = await fetch(`/api/v3/sql/${encodeURIComponent(conn)}/query?${params}`, {headers: {Authorization: `Bearer ${token}`}});
    if (!r.ok) {
      setError(`Export failed: ${(await r.json().catch(() => null))?.error || r.status}`);
      return;
    }
    const blob = await r.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = `query.${format === 'geojson' ? 'geojson' : 'csv'}`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  };

  const toMap = async () => {
    try {
      const cols = (res.schema || []).map((f) => f.name).filter((n) => n !== geoColumn);
      const ds = {id: 'ds-' + Math.random().toString(36).slice(2, 8), type: 'query', source: ran, connectionName: conn, geoColumn, label: 'Query', columns: cols.slice(0, 40)};
      const cfg = emptyConfig();
      cfg.config.visState.layers.push(newLayer(ds, 0));
      cfg.config.visState.interactionConfig.tooltip.fieldsToShow[ds.id] = cols.slice(0, 3).map((name) => ({name, format: null}));
      const m = await maps.create({title: 'Query map', datasets: [ds], keplerMapConfig: cfg});
      location.assign(`/maps/${m.id}`);
    } catch (e) {
      setError(e.message);
    }
  };

  const rows = res?.rows || [];
  const cols = (res?.schema || []).map((f) => f.name);
  return (
    <div class="page sql-console">
      <div class="page-head"><h1>SQL</h1><span class="muted">Read-only; Ctrl+Enter runs the query.</span></div>
      <div class="row">
        <label>Connection <select name="connection" value={conn} onChange={(e) => setConn(e.currentTarget.value)}>{conns.map((c) => <option key={c.id} value={c.name}>{c.name}</option>)}</select></label>
        <label class="grow">History
          <select name="history" value="" onChange={(e) => e.currentTarget.value && setQ(e.currentTarget.value)}>
            <option value="">{history.length ? `${history.length} recent queries` : 'No query yet'}</option>
            {history.map((h, i) => <option key={i} value={h}>{h.slice(0, 120)}</option>)}
          </select>
        </label>
      </div>
      <textarea class="code" name="sql" rows="7" value={q} aria-label="SQL" onInput={(e) => setQ(e.currentTarget.value)}
        onKeyDown={(e) => { if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') { e.preventDefault(); run(); } }} />
      <div class="actions">
        <button type="button" class="primary" data-testid="sql-run" disabled={busy || !token} onClick={run}>{busy ? 'Running…' : 'Run'}</button>
        {res && <>
          <button type="button" data-testid="sql-csv" onClick={() => exportAs('csv')}>Export CSV</button>
          {geoColumn && <button type="button" data-testid="sql-geojson" onClick={() => exportAs('geojson')}>Export GeoJSON</button>}
          {geoColumn && ['admin', 'editor'].includes(me.user.role) && <button type="button" onClick={toMap}>Create map</button>}
        </>}
      </div>
      {error && <div class="note error" role="alert" data-testid="sql-error">{error}</div>}
      {res && <p class="muted" data-testid="sql-summary">{formatValue(rows.length)} rows{res.meta?.truncated ? ' (truncated)' : ''}{geoColumn ? ` · geometry column ${geoColumn}` : ''}</p>}
      {geoColumn && <div class="sql-map"><MapView style={basemapStyle('meridian-light').url} view={{longitude: 0, latitude: 20, zoom: 1}} layers={layers}
        tooltipFields={() => cols.filter((c) => c !== geoColumn).slice(0, 4)} /></div>}
      {res && <div class="scroll"><table class="sample" data-testid="sql-result"><thead><tr>{cols.map((c) => <th key={c}>{c}</th>)}</tr></thead>
        <tbody>{rows.slice(0, 200).map((r, i) => <tr key={i}>{cols.map((c) => <td key={c}>{c === geoColumn ? '◆' : typeof r[c] === 'object' && r[c] !== null ? JSON.stringify(r[c]).slice(0, 60) : formatValue(r[c])}</td>)}</tr>)}</tbody></table></div>}
    </div>
  );
}
