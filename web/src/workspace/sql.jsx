// sql.jsx: the workspace's SQL (/sql: run a read-only query, submit a
// batch job, map a query) and batch SQL jobs (/jobs: follow, cancel).
import {useState} from 'preact/hooks';
import {call} from '../api.js';
import {formatCount, formatTime} from '../format.js';
import {hasAPI} from '../session.js';
import {Note} from '../ui.jsx';
import {Badge, Cancel, Card, ConnSelect, Failure, NeedAPI, RouteLink, active, previewURL, usePoller, ws} from './common.jsx';

// last is the query being written, kept while the view changes.
const last = {conn: '', text: ''};

function cellText(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

const MAX_SHOWN = 500;

function Result({res, ms}) {
  const rows = res.rows || [];
  const cols = (res.schema || []).map((f) => f.name);
  if (cols.length === 0 && rows.length > 0) cols.push(...Object.keys(rows[0]));
  const types = Object.fromEntries((res.schema || []).map((f) => [f.name, f.type]));
  return (
    <div>
      <p class="muted" id="sql-meta">
        {formatCount(rows.length)} {rows.length === 1 ? 'row' : 'rows'} in {Math.round(ms)} ms
        {rows.length > MAX_SHOWN ? ` (showing the first ${MAX_SHOWN})` : ''}
      </p>
      {cols.length > 0 && (
        <div class="scroll">
          <table class="results" id="sql-table">
            <thead><tr>{cols.map((c) => <th key={c} title={types[c]}>{c}</th>)}</tr></thead>
            <tbody>
              {rows.slice(0, MAX_SHOWN).map((r, i) => (
                <tr key={i}>
                  {cols.map((c) => {
                    const t = cellText(r[c]);
                    return t === null ? <td key={c} class="null">null</td> : <td key={c} title={t.length > 40 ? t.slice(0, 2000) : undefined}>{t}</td>;
                  })}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function Console() {
  const [conn, setConn] = useState(last.conn || ws.conns[0]);
  const [text, setText] = useState(last.text);
  const [out, setOut] = useState(null);
  const [busy, setBusy] = useState('');
  Object.assign(last, {conn, text});
  const canJob = ws.claims.grants.some((g) => g.connection_name === conn && g.source.trim() === '*');
  const path = (what) => `/api/v3/sql/${encodeURIComponent(conn)}/${what}`;
  const run = async (e) => {
    e.preventDefault();
    const q = text.trim();
    if (!q) return;
    setBusy('run');
    setOut(<p class="empty">Running…</p>);
    const t0 = performance.now();
    try {
      // CARTO clients POST past about 7000 characters of URL; so does this.
      const res = q.length > 6000 ? await call(path('query'), {method: 'POST', token: ws.token, body: {q}})
        : await call(path('query'), {token: ws.token, params: {q}});
      setOut(<Result res={res} ms={performance.now() - t0} />);
    } catch (err) {
      setOut(<Failure error={err} />);
    } finally {
      setBusy('');
    }
  };
  const job = async () => {
    const q = text.trim();
    if (!q) return;
    setBusy('job');
    try {
      const j = await call(path('job'), {method: 'POST', token: ws.token, body: {query: q}});
      setOut(<Note kind="ok">Batch job {j.jobId} queued ({j.status}). <RouteLink href="/jobs">See jobs</RouteLink></Note>);
    } catch (err) {
      setOut(<Failure error={err} />);
    } finally {
      setBusy('');
    }
  };
  const map = () => {
    const q = text.trim();
    if (q) window.open(previewURL(conn, {q}), '_blank', 'noopener,noreferrer');
  };
  return (
    <Card id="sql" title="SQL">
      <form id="sql-form" onSubmit={run}>
        <div class="actions"><label>Connection<ConnSelect id="sql-connection" value={conn} onChange={(e) => setConn(e.currentTarget.value)} /></label></div>
        <label class="field">Query
          <textarea id="sql-query" rows={6} class="code" spellcheck={false} required placeholder="SELECT name, geom FROM public.countries LIMIT 10"
            value={text} onInput={(e) => setText(e.currentTarget.value)} />
        </label>
        <div class="actions">
          <button type="submit" class="primary" id="sql-run" disabled={busy === 'run'}>Run query</button>
          <button type="button" id="sql-job" disabled={!canJob || busy === 'job'} title={canJob ? '' : `Batch jobs need a * grant on ${conn}`} onClick={job}>Run as batch job</button>
          {hasAPI(ws.claims, 'maps') && <button type="button" id="sql-map" onClick={map}>Show on a map</button>}
          <span class="grow" />
          <span class="muted">Queries run read-only; batch jobs may write.</span>
        </div>
      </form>
      <div id="sql-result" class="result">{out}</div>
    </Card>
  );
}

export function SQL() {
  if (!hasAPI(ws.claims, 'sql')) return <Card id="sql" title="SQL"><NeedAPI api="sql" /></Card>;
  return <Console />;
}

function jobResult(j) {
  if (j.error) return <div class="err">{j.error}</div>;
  if (j.retryReason) return <div class="sub">retrying after: {j.retryReason}</div>;
  const r = j.result;
  if (!r) return null;
  return [r.command, r.wrote ? ' · wrote' : '', Number.isFinite(r.elapsedMs) ? ` · ${r.elapsedMs} ms` : ''].join('');
}

function JobsTable({jobs, refresh}) {
  if (jobs.length === 0) return <p class="empty" id="jobs-empty">No batch SQL jobs yet: submit one from <RouteLink href="/sql">SQL</RouteLink>.</p>;
  return (
    <div class="scroll">
      <table id="jobs-table">
        <thead><tr>{['Created', 'Connection', 'Query', 'Status', 'Result', ''].map((t) => <th key={t}>{t}</th>)}</tr></thead>
        <tbody>
          {jobs.map((j) => {
            const long = j.query.length > 300;
            return (
              <tr key={j.jobId} data-id={j.jobId} data-status={j.status}>
                <td title={j.createdAt}>{formatTime(j.createdAt)}</td>
                <td>{j.connection}</td>
                <td class="code" title={long ? j.query.slice(0, 2000) : undefined}>{long ? j.query.slice(0, 300) + '…' : j.query}</td>
                <td><Badge status={j.status} /></td>
                <td>{jobResult(j)}</td>
                <td>{active(j.status) && <Cancel path={`/api/v3/sql/${encodeURIComponent(j.connection)}/job/${encodeURIComponent(j.jobId)}/cancel`} done={refresh} />}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function JobsList() {
  const [jobs, setJobs] = useState(null);
  const [error, setError] = useState(null);
  const refresh = usePoller(async (signal) => {
    try {
      const {jobs} = await call('/api/v3/sql/jobs', {token: ws.token, params: {limit: 50}, signal});
      setJobs(jobs);
      setError(null);
      return jobs.some((j) => active(j.status));
    } catch (err) {
      if (err.name !== 'AbortError') setError(err);
      return false;
    }
  });
  return (
    <Card id="jobs" title={<>Batch SQL jobs<span class="spacer" /><button type="button" class="small" onClick={refresh}>Refresh</button></>}>
      <p class="muted">The 50 most recent jobs on connections this token has a * grant on.</p>
      <div>{error && <Failure error={error} />}</div>
      <div>{jobs ? <JobsTable jobs={jobs} refresh={refresh} /> : <p class="empty">Loading…</p>}</div>
    </Card>
  );
}

export function Jobs() {
  if (!hasAPI(ws.claims, 'sql')) return <Card id="jobs" title="Batch SQL jobs"><NeedAPI api="sql" /></Card>;
  return <JobsList />;
}
