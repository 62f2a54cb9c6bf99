// common.jsx: what the workspace's views share: the signed-in token, the
// cards, errors, links and the poller of unfinished work.
import {useEffect, useRef, useState} from 'preact/hooks';
import {APIError, call, signInURL} from '../api.js';
import {ErrorNote, Note} from '../ui.jsx';

// ws is the signed-in token: {token, claims, conns}, set by main.jsx
// before the first view renders.
export const ws = {token: '', claims: null, conns: []};

export const active = (status) => status === 'pending' || status === 'running';

// Failure shows an error; a refused token gets a way to sign in again.
export function Failure({error}) {
  if (error instanceof APIError && error.status === 401) {
    return <Note kind="error">The server refused the token: {error.message}. <a href={signInURL()}>Sign in again</a></Note>;
  }
  return <ErrorNote error={error} />;
}

export const NeedAPI = ({api}) => (
  <Note kind="warn">This token does not allow the {api} API (it allows {ws.claims.allowed_apis.join(', ') || 'none'}).</Note>
);

export const Card = ({id, title, children}) => <section class="card" id={id}><h2>{title}</h2>{children}</section>;

export const ConnSelect = (props) => (
  <select name="connection" required {...props}>{ws.conns.map((c) => <option key={c} value={c}>{c}</option>)}</select>
);

// RouteLink changes the view without reloading the page (main.jsx).
export const RouteLink = ({href, children}) => <a href={href} data-route="">{children}</a>;

export const Badge = ({status}) => <span class={`badge ${status}`}>{status}</span>;

// Cancel is a button that cancels work at path, then calls done; a
// refusal takes its place.
export function Cancel({path, done}) {
  const [state, setState] = useState(null); // 'busy' or an error
  if (state && state !== 'busy') return <Failure error={state} />;
  const cancel = async () => {
    setState('busy');
    try {
      await call(path, {method: 'POST', token: ws.token});
      done();
    } catch (err) {
      setState(err);
    }
  };
  return <button type="button" class="small" disabled={state === 'busy'} onClick={cancel}>Cancel</button>;
}

// previewURL is the tiles engine's MapLibre page of a source: a table
// (name) or a query (q). The token travels in the URL: the page's address
// bar is the only way to give it one.
export const previewURL = (conn, source) =>
  `/api/v3/maps/${encodeURIComponent(conn)}/preview?` + new URLSearchParams({...source, access_token: ws.token});

export const PreviewLink = ({conn, table, children = 'Map'}) => (
  <a href={previewURL(conn, {name: table})} target="_blank" rel="noopener noreferrer" class="preview">{children}</a>
);

// usePoller calls load(signal) now, and again every 2 s while load reports
// unfinished work (load shows its own errors), until the view goes; it
// returns a function that calls load again now.
export function usePoller(load) {
  const run = useRef(() => {});
  useEffect(() => {
    let timer = 0;
    let stopped = false;
    const ctrl = new AbortController();
    run.current = async () => {
      clearTimeout(timer);
      if (stopped) return;
      const again = await load(ctrl.signal).catch(() => false);
      if (again && !stopped) timer = setTimeout(run.current, 2000);
    };
    run.current();
    return () => {
      stopped = true;
      clearTimeout(timer);
      ctrl.abort();
    };
  }, []);
  return () => run.current();
}
