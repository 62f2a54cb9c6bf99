// explorer.jsx: /data, the Data Explorer: connections → schemas → tables
// → columns and sample rows, and "Create map" from a table.
import {useEffect, useState} from 'preact/hooks';
import {catalog, maps, dataToken} from './api.js';
import {ImportDialog, ImportBanner} from './imports.jsx';
import {emptyConfig, newLayer} from './style.js';
import {datasetFromTable, spatialOf} from './adddata.jsx';
import {formatValue} from './mapview.jsx';

export function Explorer({me}) {
  const [conns, setConns] = useState(null);
  const [open, setOpen] = useState({});
  const [table, setTable] = useState(null);
  const [sample, setSample] = useState(null);
  const [error, setError] = useState('');
  const [token, setToken] = useState(null);
  const [importing, setImporting] = useState(false);
  const [jobs, setJobs] = useState([]);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    catalog.connections().then((r) => setConns(r.connections)).catch((e) => setError(e.message));
    dataToken().then(setToken).catch(() => setToken(null));
  }, [tick]);
  const toggle = async (key, load) => {
    if (open[key]) {
      setOpen((o) => ({...o, [key]: null}));
      return;
    }
    try {
      setOpen((o) => ({...o, [key]: 'loading'}));
      const v = await load();
      setOpen((o) => ({...o, [key]: v}));
    } catch (e) {
      setError(e.message);
    }
  };
  const show = async (conn, name) => {
    setError('');
    setSample(null);
    try {
      const t = await catalog.table(conn, name);
      setTable({conn, ...t});
      catalog.sample(conn, name).then(setSample).catch((e) => setSample({error: e.message}));
    } catch (e) {
      setError(e.message);
    }
  };
  // mapOf makes a map of a table (one layer) and opens it.
  const mapOf = async (conn, t) => {
    try {
      const ds = datasetFromTable(conn, t);
      const cfg = emptyConfig();
      const l = newLayer(ds, 0);
      cfg.config.visState.layers.push(l);
      cfg.config.visState.interactionConfig.tooltip.fieldsToShow[ds.id] = ds.columns.slice(0, 3).map((name) => ({name, format: null}));
      const m = await maps.create({title: t.table || t.name, datasets: [ds], keplerMapConfig: cfg});
      location.assign(`/maps/${m.id}`);
    } catch (e) {
      setError(e.message);
    }
  };
  const createMap = () => mapOf(table.conn, table);
  const canCreate = ['admin', 'editor'].includes(me.user.role);
  return (
    <div class="page explorer">
      <div class="page-head">
        <h1>Data</h1>
        <span class="grow" />
        {canCreate && token && <button type="button" class="primary" data-testid="import-open" onClick={() => setImporting(true)}>Import data</button>}
      </div>
      {error && <div class="note error" role="alert">{error}</div>}
      {jobs.map((j) => <ImportBanner key={j.id} token={token} imp={j}
        onDone={() => { setOpen({}); setTick((t) => t + 1); }}
        onCreateMap={async (done) => {
          try {
            const t = await catalog.table(done.connection, done.result.table);
            mapOf(done.connection, t);
          } catch (e) {
            setError(e.message);
          }
        }}
        onClose={() => setJobs((js) => js.filter((x) => x.id !== j.id))} />)}
      {importing && <ImportDialog token={token} onClose={() => setImporting(false)} onImported={(imp) => setJobs((js) => [imp, ...js])} />}
      <div class="explorer-grid">
        <nav class="tree" aria-label="Connections">
          {conns === null ? <p class="muted">Loading…</p> : conns.length === 0 ? <p class="muted">No connection yet. <a href="/connections">Add one</a>.</p> : (
            <ul>
              {conns.map((c) => <li key={c.id}>
                <button type="button" class="tree-item" aria-expanded={!!open[c.name]} onClick={() => toggle(c.name, () => catalog.schemas(c.name).then((r) => r.schemas))}>🗄 {c.name}</button>
                {Array.isArray(open[c.name]) && <ul>
                  {open[c.name].map((s) => {
                    const key = `${c.name}/${s.name}`;
                    return <li key={s.name}>
                      <button type="button" class="tree-item" aria-expanded={!!open[key]} onClick={() => toggle(key, () => catalog.tables(c.name, s.name).then((r) => r.tables))}>{s.name} <span class="muted">({s.tables})</span></button>
                      {Array.isArray(open[key]) && <ul>
                        {open[key].map((t) => <li key={t.name}><button type="button" class={'tree-item table' + (table?.name === t.name ? ' current' : '')} data-table={t.name} onClick={() => show(c.name, t.name)}>{t.table} {t.geometryType && <span class="muted small">{t.geometryType}</span>}</button></li>)}
                      </ul>}
                    </li>;
                  })}
                </ul>}
              </li>)}
            </ul>
          )}
        </nav>
        <section class="table-detail">
          {!table ? <p class="muted">Pick a table to see its columns and a sample of its rows.</p> : <>
            <div class="page-head">
              <h2>{table.name}</h2>
              <span class="muted">{table.kind} · ~{formatValue(table.estimatedRows)} rows · {(table.sizeBytes / 1048576).toFixed(1)} MB</span>
              <span class="grow" />
              {canCreate && spatialOf(table) && <button type="button" class="primary" data-testid="create-map" onClick={createMap}>Create map</button>}
            </div>
            <table class="columns"><thead><tr><th>Column</th><th>Type</th><th>Nullable</th></tr></thead>
              <tbody>{(table.columns || []).map((c) => <tr key={c.name}><td>{c.name}</td><td>{c.type}</td><td>{c.nullable ? 'yes' : 'no'}</td></tr>)}</tbody></table>
            <h3>Sample</h3>
            {!sample ? <p class="muted">Loading…</p> : sample.error ? <div class="note error">{sample.error}</div> : (
              <div class="scroll"><table class="sample"><thead><tr>{sample.columns.map((c) => <th key={c.name ?? c}>{c.name ?? c}</th>)}</tr></thead>
                <tbody>{sample.rows.map((r, i) => <tr key={i}>{sample.columns.map((c) => { const k = c.name ?? c; const v = Array.isArray(r) ? r[sample.columns.indexOf(c)] : r[k]; return <td key={k}>{typeof v === 'object' && v !== null ? JSON.stringify(v).slice(0, 80) : formatValue(v)}</td>; })}</tr>)}</tbody></table></div>
            )}
          </>}
        </section>
      </div>
    </div>
  );
}
