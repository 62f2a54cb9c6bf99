// imports.jsx: the import dialog of the Data Explorer. Drop a file (or
// give a URL); the server previews it without importing (format, layers
// with their feature counts, columns and types, a few rows); pick the
// layer and the table; the upload shows its bytes, then a banner follows
// the import job until it ends, with its warnings, and offers a map.
import {useEffect, useRef, useState} from 'preact/hooks';
import {call, catalog, upload} from './api.js';
import {formatValue} from './mapview.jsx';
import {tableName} from './format.js';

const bytes = (n) => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : n >= 1024 ? `${(n / 1024).toFixed(0)} KB` : `${n} B`);

export function ImportDialog({token, onClose, onImported}) {
  const [conns, setConns] = useState([]);
  const [conn, setConn] = useState('');
  const [file, setFile] = useState(null);
  const [url, setURL] = useState('');
  const [preview, setPreview] = useState(null);
  const [layer, setLayer] = useState('');
  const [dest, setDest] = useState('');
  const [ifExists, setIfExists] = useState('fail');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [sending, setSending] = useState(null); // {sent, total} while the file uploads
  const [dragging, setDragging] = useState(false);
  const input = useRef(null);

  useEffect(() => {
    catalog.connections().then((r) => {
      setConns(r.connections);
      setConn(r.connections[0]?.name || '');
    }).catch((e) => setError(e.message));
  }, []);

  const describe = async (f, u, lyr) => {
    setError('');
    setBusy('Reading the file…');
    try {
      let p;
      if (f) {
        const form = new FormData();
        if (lyr) form.append('layer', lyr);
        form.append('file', f);
        p = await upload('/api/v3/imports/preview', form, {token});
      } else {
        p = await call('/api/v3/imports/preview', {method: 'POST', token, body: {url: u, ...(lyr ? {layer: lyr} : {})}});
      }
      setPreview(p);
      setLayer(p.layer || '');
    } catch (e) {
      setPreview(null);
      setError(e.message);
    } finally {
      setBusy('');
    }
  };
  const choose = (f) => {
    if (!f) return;
    setFile(f);
    setURL('');
    setDest(tableName(f.name));
    describe(f, '', '');
  };
  const start = async (e) => {
    e.preventDefault();
    setError('');
    if (!file && !url) {
      setError('Drop a file or give a URL first.');
      return;
    }
    setBusy('Uploading…');
    try {
      const fields = {connection: conn, destination: dest.trim(), if_exists: ifExists, ...(layer ? {layer} : {})};
      let imp;
      if (file) {
        // Fields before the file: the server checks the grant before storing anything.
        const form = new FormData();
        for (const [k, v] of Object.entries(fields)) form.append(k, v);
        form.append('file', file);
        setSending({sent: 0, total: file.size});
        imp = await upload('/api/v3/imports', form, {token, onProgress: (sent, total) => setSending({sent, total: total || file.size})});
      } else {
        imp = await call('/api/v3/imports', {method: 'POST', token, body: {...fields, url}});
      }
      onImported(imp);
      onClose();
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy('');
      setSending(null);
    }
  };

  return (
    <div class="dialog-backdrop" onClick={(e) => e.target === e.currentTarget && !busy && onClose()}>
      <form class="dialog wide" role="dialog" aria-label="Import data" onSubmit={start}>
        <h2>Import data</h2>
        {error && <div class="note error" role="alert" data-testid="import-error">{error}</div>}
        <div class={'dropzone' + (dragging ? ' over' : '')} data-testid="dropzone"
          onDragOver={(e) => { e.preventDefault(); setDragging(true); }} onDragLeave={() => setDragging(false)}
          onDrop={(e) => { e.preventDefault(); setDragging(false); choose(e.dataTransfer.files[0]); }}
          onClick={() => input.current?.click()}>
          {file ? <span><b>{file.name}</b> · {bytes(file.size)}</span> : <span>Drop a file here (GeoJSON, GeoPackage, Shapefile zip, CSV, KML, FlatGeobuf…) or click to choose</span>}
          <input ref={input} type="file" name="file" hidden onChange={(e) => choose(e.currentTarget.files[0])} />
        </div>
        <div class="row">
          <label class="grow">or a URL <input type="url" name="url" value={url} placeholder="https://…/data.geojson" onInput={(e) => setURL(e.currentTarget.value)}
            onBlur={() => { if (url && !file) { setDest(tableName(url.split('/').pop() || 'import')); describe(null, url, ''); } }} /></label>
        </div>
        {busy && <p class="muted" role="status">{busy}</p>}
        {sending && <progress data-testid="upload-progress" max={sending.total || 1} value={sending.sent} />}
        {preview && <div class="preview" data-testid="import-preview">
          <p><b>{preview.format}</b>{preview.geometry?.kind ? ` · geometry: ${preview.geometry.kind}${preview.geometry.column ? ' ' + preview.geometry.column : ''}${preview.geometry.latitude ? ` (${preview.geometry.longitude}, ${preview.geometry.latitude})` : ''}` : ''}</p>
          {preview.layers?.length > 1 && <label>Layer
            <select name="layer" value={layer} onChange={(e) => { const v = e.currentTarget.value; setLayer(v); describe(file, url, v); }}>
              {preview.layers.map((l) => <option key={l.name} value={l.name}>{l.name} — {l.geometryType || 'no geometry'}, {formatValue(l.features)} features</option>)}
            </select>
          </label>}
          <div class="scroll"><table class="sample"><thead><tr>{preview.columns.map((c) => <th key={c.name}>{c.name}<br /><span class="muted small">{c.type}</span></th>)}</tr></thead>
            <tbody>{(preview.rows || []).slice(0, 5).map((r, i) => <tr key={i}>{preview.columns.map((c) => <td key={c.name}>{typeof r[c.name] === 'object' && r[c.name] !== null ? '…' : formatValue(r[c.name])}</td>)}</tr>)}</tbody></table></div>
        </div>}
        <div class="row">
          <label>Connection
            <select name="connection" value={conn} onChange={(e) => setConn(e.currentTarget.value)}>{conns.map((c) => <option key={c.id} value={c.name}>{c.name}</option>)}</select>
          </label>
          <label class="grow">Table <input type="text" name="destination" required value={dest} onInput={(e) => setDest(e.currentTarget.value)} placeholder="schema.table" /></label>
          <label>If it exists
            <select name="if_exists" value={ifExists} onChange={(e) => setIfExists(e.currentTarget.value)}>
              <option value="fail">fail</option><option value="replace">replace it</option><option value="append">append rows</option>
            </select>
          </label>
        </div>
        <div class="actions">
          <button type="button" onClick={onClose} disabled={!!busy}>Cancel</button>
          <button type="submit" class="primary" disabled={!!busy || (!file && !url)}>Import</button>
        </div>
      </form>
    </div>
  );
}

// ImportBanner follows an import job until it ends.
export function ImportBanner({token, imp, onDone, onCreateMap, onClose}) {
  const [job, setJob] = useState(imp);
  useEffect(() => {
    let stop = false;
    let timer;
    const tick = async () => {
      try {
        const j = await call(`/api/v3/imports/${encodeURIComponent(imp.id)}`, {token});
        if (stop) return;
        setJob(j);
        if (['success', 'failure', 'cancelled'].includes(j.status)) {
          onDone?.(j);
          return;
        }
      } catch {
        // try again
      }
      timer = setTimeout(tick, 1000);
    };
    tick();
    return () => { stop = true; clearTimeout(timer); };
  }, [imp.id]);
  const p = job.progress || {};
  const warnings = job.result?.warnings || [];
  return (
    <div class={`banner ${job.status}`} role="status" data-testid="import-banner" data-status={job.status}>
      <b>{job.destination}</b>
      {job.status === 'success' ? <span> imported: {formatValue(job.result?.rows)} rows{job.result?.geometryType ? ` of ${job.result.geometryType}` : ''}.</span>
        : job.status === 'failure' ? <span> failed: {job.error}</span>
          : job.status === 'cancelled' ? <span> cancelled.</span>
            : <span> {job.status}{p.phase ? ` · ${p.phase}` : ''} · {bytes(p.bytesDone || 0)}{p.bytesTotal ? ` of ${bytes(p.bytesTotal)}` : ''} · {formatValue(p.rows || 0)} rows
              {p.bytesTotal ? <progress max={p.bytesTotal} value={p.bytesDone} /> : null}</span>}
      {warnings.length > 0 && <ul class="warnings" data-testid="import-warnings">{warnings.map((w, i) => <li key={i}>{w}</li>)}</ul>}
      {job.status === 'success' && onCreateMap && <button type="button" class="small primary" onClick={() => onCreateMap(job)}>Create map</button>}
      <button type="button" class="icon" aria-label="Close" onClick={onClose}>×</button>
    </div>
  );
}
