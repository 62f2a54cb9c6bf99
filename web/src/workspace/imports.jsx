// imports.jsx: the workspace's imports (/): upload a file or import a URL,
// follow the imports until they end, cancel one, open a finished one's
// map preview.
import {useRef, useState} from 'preact/hooks';
import {call, upload} from '../api.js';
import {hasAPI} from '../session.js';
import {Note} from '../ui.jsx';
import {formatBytes, formatCount, formatTime, tableName} from '../format.js';
import {Badge, Cancel, Card, ConnSelect, Failure, NeedAPI, PreviewLink, active, usePoller, ws} from './common.jsx';

function NewImport({onCreated}) {
  const [msg, setMsg] = useState(null);
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState(null); // {sent, total} while uploading
  const dest = useRef(null);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = form.elements;
    setMsg(null);
    const file = f.file.files[0];
    const url = f.url.value.trim();
    if (!file === !url) {
      setMsg(<Note kind="error">Choose a file or give a URL (one of the two).</Note>);
      return;
    }
    setBusy(true);
    try {
      let imp;
      const fields = {connection: f.connection.value, destination: f.destination.value.trim(), if_exists: f.if_exists.value};
      if (file) {
        // Fields before the file: the server checks the grant before storing anything.
        const body = new FormData();
        for (const [k, v] of Object.entries(fields)) body.append(k, v);
        body.append('file', file);
        setProgress({sent: 0, total: 1});
        imp = await upload('/api/v3/imports', body, {token: ws.token, onProgress: (sent, total) => total && setProgress({sent, total})});
      } else {
        imp = await call('/api/v3/imports', {method: 'POST', token: ws.token, body: {...fields, url}});
      }
      form.reset();
      setMsg(<Note kind="ok">Import into {imp.destination} queued.</Note>);
      onCreated();
    } catch (err) {
      setMsg(<Failure error={err} />);
    } finally {
      setBusy(false);
      setProgress(null);
    }
  };
  const named = (e) => {
    const file = e.currentTarget.files[0];
    if (file && !dest.current.value) dest.current.value = tableName(file.name);
  };
  return (
    <Card id="new-import" title="New import">
      <form class="row" id="import-form" onSubmit={submit}>
        <label>Connection<ConnSelect id="import-connection" /></label>
        <label>Table
          <input type="text" id="import-destination" name="destination" required placeholder="schema.table" ref={dest}
            pattern="([A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}" title="table or schema.table: letters, digits and _" />
        </label>
        <label>File<input type="file" id="import-file" name="file" onChange={named} /></label>
        <label class="grow">or URL<input type="url" id="import-url" name="url" placeholder="https://…/data.geojson" /></label>
        <label>If the table exists
          <select id="import-if-exists" name="if_exists">
            <option value="fail">fail</option><option value="replace">replace it</option><option value="append">append rows</option>
          </select>
        </label>
        <button type="submit" class="primary" id="import-submit" disabled={busy}>Import</button>
        {progress && <progress max={progress.total} value={progress.sent} />}
      </form>
      <p class="muted">GeoJSON, newline-delimited GeoJSON, CSV, Shapefile (zipped), GeoPackage, KML/KMZ, FlatGeobuf, GPX, TopoJSON or GML.</p>
      <div id="import-message">{msg}</div>
    </Card>
  );
}

function ImportStatus({i}) {
  const p = i.progress || {};
  const total = p.bytesTotal;
  return (
    <>
      <Badge status={i.status} />
      {i.status === 'running' && (
        <>
          {!!total && <> <progress max={total} value={Math.min(p.bytesDone, total)} /></>}
          <div class="sub">{[p.phase, total ? `${formatBytes(p.bytesDone)} of ${formatBytes(total)}` : p.bytesDone ? formatBytes(p.bytesDone) : ''].filter(Boolean).join(' · ')}</div>
        </>
      )}
      {i.retryReason && <div class="sub">retrying after: {i.retryReason}</div>}
      {i.error && <div class="err">{i.error}</div>}
    </>
  );
}

function ImportsTable({imports, refresh}) {
  if (imports.length === 0) return <p class="empty" id="imports-empty">No imports yet: upload a file or give a URL above.</p>;
  return (
    <div class="scroll">
      <table id="imports-table">
        <thead><tr>{['Table', 'Source', 'Status', 'Rows', 'Created', ''].map((t) => <th key={t} class={t === 'Rows' ? 'num' : undefined}>{t}</th>)}</tr></thead>
        <tbody>
          {imports.map((i) => {
            const rows = Number.isFinite(i.result?.rows) ? i.result.rows : i.progress?.rows;
            return (
              <tr key={i.id} data-id={i.id} data-status={i.status}>
                <td><div class="dest">{i.destination}</div><div class="sub">{i.connection}</div></td>
                <td class="code">{i.filename || i.url || ''}</td>
                <td><ImportStatus i={i} /></td>
                <td class="num">{formatCount(rows)}</td>
                <td title={i.createdAt}>{formatTime(i.createdAt)}</td>
                <td>
                  {active(i.status) ? <Cancel path={`/api/v3/imports/${encodeURIComponent(i.id)}/cancel`} done={refresh} />
                    : i.status === 'success' && hasAPI(ws.claims, 'maps') ? <PreviewLink conn={i.connection} table={i.destination} /> : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function ImportsList() {
  const [imports, setImports] = useState(null);
  const [error, setError] = useState(null);
  const refresh = usePoller(async (signal) => {
    try {
      const {imports} = await call('/api/v3/imports', {token: ws.token, params: {limit: 50}, signal});
      setImports(imports);
      setError(null);
      return imports.some((i) => active(i.status));
    } catch (err) {
      if (err.name !== 'AbortError') setError(err);
      return false;
    }
  });
  return (
    <>
      <NewImport onCreated={refresh} />
      <Card id="imports" title={<>Imports<span class="spacer" /><button type="button" class="small" onClick={refresh}>Refresh</button></>}>
        <div>{error && <Failure error={error} />}</div>
        <div>{imports ? <ImportsTable imports={imports} refresh={refresh} /> : <p class="empty">Loading…</p>}</div>
      </Card>
    </>
  );
}

export function Imports() {
  if (!hasAPI(ws.claims, 'imports')) return <Card id="imports" title="Imports"><NeedAPI api="imports" /></Card>;
  return <ImportsList />;
}
