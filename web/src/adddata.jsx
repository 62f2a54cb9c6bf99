// adddata.jsx: the "Add source" dialog: a table of a connection, a SQL
// query, or an H3/quadbin table or query. It checks the source (the server
// probes it read-only) before the editor adds it.
import {useEffect, useState} from 'preact/hooks';
import {catalog, sql} from './api.js';
import {namesIn, paramValues} from './params.js';

const newID = () => 'ds-' + Math.random().toString(36).slice(2, 8);

// spatialOf guesses a table's geometry column or spatial index column.
export function spatialOf(table) {
  if (table.geometryColumn) return table.geometryColumn;
  const cols = table.columns || [];
  const h3 = cols.find((c) => /^h3$/i.test(c.name));
  if (h3) return `h3:${h3.name}`;
  const qb = cols.find((c) => /^quadbin$/i.test(c.name));
  if (qb) return `quadbin:${qb.name}`;
  return '';
}

// datasetFromTable is a map dataset of a table of the catalog.
export function datasetFromTable(conn, table) {
  const geo = spatialOf(table);
  const geoName = geo.includes(':') ? geo.split(':')[1] : geo;
  return {
    id: newID(), type: 'table', source: table.name, connectionName: conn, geoColumn: geo || 'geom', label: table.table || table.name,
    columns: (table.columns || []).filter((c) => c.name !== geoName && !/^geometry|^geography/i.test(c.type)).slice(0, 40).map((c) => c.name),
  };
}

// queryLabel names a query's dataset after the first table it reads.
const queryLabel = (q) => {
  const from = /\bfrom\s+([\w."]+)/i.exec(q)?.[1];
  return from ? `Query on ${from.replace(/"/g, '')}` : 'SQL query';
};

// params are the map's SQL parameters: a query may use them as :name.
export function AddData({token, params = [], onAdd, onClose}) {
  const [conns, setConns] = useState(null);
  const [conn, setConn] = useState('');
  const [kind, setKind] = useState('table');
  const [tables, setTables] = useState(null);
  const [table, setTable] = useState('');
  const [query, setQuery] = useState('');
  const [geo, setGeo] = useState('geom');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    catalog.connections().then((r) => {
      setConns(r.connections);
      if (r.connections[0]) setConn(r.connections[0].name);
    }).catch((e) => setError(e.message));
  }, []);
  useEffect(() => {
    if (!conn) return;
    setTables(null);
    catalog.schemas(conn).then(async (r) => {
      const all = [];
      for (const s of r.schemas) {
        const t = await catalog.tables(conn, s.name);
        all.push(...t.tables);
      }
      setTables(all);
      const first = all.find((t) => t.geometryColumn) || all[0];
      setTable(first ? first.name : '');
    }).catch((e) => setError(e.message));
  }, [conn]);

  const add = async (e) => {
    e.preventDefault();
    setError('');
    setBusy(true);
    try {
      if (kind === 'table') {
        const t = await catalog.table(conn, table);
        const ds = datasetFromTable(conn, t);
        if (!ds.geoColumn || (!t.geometryColumn && !ds.geoColumn.includes(':'))) throw new Error(`${table} has no geometry column and no h3 or quadbin column.`);
        await onAdd(ds);
      } else {
        const q = query.trim().replace(/;\s*$/, '');
        if (!q) throw new Error('Write a query first.');
        const unknown = [...namesIn(q)].filter((n) => !params.some((p) => p.name === n));
        if (unknown.length) throw new Error(`The query uses ${unknown.map((n) => ':' + n).join(', ')}: add ${unknown.length > 1 ? 'these parameters' : 'this parameter'} in the Parameters tab first.`);
        // The query's columns, without running it in full.
        const res = await sql(token, conn, `SELECT * FROM (${q}) AS _q LIMIT 0`, {params: paramValues(params)});
        const fields = (res.schema || res.fields || []).map((f) => f.name);
        const geoName = geo.includes(':') ? geo.split(':')[1] : geo;
        if (!fields.includes(geoName)) throw new Error(`The query has no column "${geoName}" (it has ${fields.join(', ') || 'none'}).`);
        await onAdd({id: newID(), type: 'query', source: q, connectionName: conn, geoColumn: geo, label: queryLabel(q),
          columns: fields.filter((f) => f !== geoName).slice(0, 40)});
      }
      onClose();
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="dialog-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <form class="dialog" role="dialog" aria-label="Add source" onSubmit={add}>
        <h2>Add source</h2>
        {error && <div class="note error" role="alert" data-testid="add-error">{error}</div>}
        <label>Connection
          <select name="connection" value={conn} onChange={(e) => setConn(e.currentTarget.value)}>
            {(conns || []).map((c) => <option key={c.id} value={c.name}>{c.name}</option>)}
          </select>
        </label>
        <div class="tabs" role="tablist">
          <button type="button" role="tab" aria-selected={kind === 'table'} onClick={() => setKind('table')}>Table</button>
          <button type="button" role="tab" aria-selected={kind === 'query'} onClick={() => setKind('query')}>SQL query</button>
        </div>
        {kind === 'table' ? (
          <label>Table
            <select name="table" value={table} onChange={(e) => setTable(e.currentTarget.value)} disabled={!tables}>
              {(tables || []).map((t) => <option key={t.name} value={t.name}>{t.name}{t.geometryColumn ? ` (${t.geometryType || 'geometry'})` : ''}</option>)}
            </select>
          </label>
        ) : (
          <>
            <label>Query
              <textarea name="query" rows="6" class="code" value={query} onInput={(e) => setQuery(e.currentTarget.value)}
                onKeyDown={(e) => { if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') add(e); }}
                placeholder="SELECT name, pop_est, geom FROM countries WHERE continent = 'Africa'" />
            </label>
            {params.length > 0 && <p class="muted small" data-testid="param-hint">Parameters: {params.map((p) => ':' + p.name).join(', ')}</p>}
            <label>Geometry or spatial index column
              <input type="text" name="geo" value={geo} onInput={(e) => setGeo(e.currentTarget.value)} placeholder="geom, h3:h3 or quadbin:quadbin" />
            </label>
          </>
        )}
        <div class="actions">
          <button type="button" onClick={onClose}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>{busy ? 'Adding…' : 'Add'}</button>
        </div>
      </form>
    </div>
  );
}
