// manage.jsx: the workspace's API access tokens (/tokens) and connections
// (/connections), through the management APIs with the browser session.
import {useEffect, useState} from 'preact/hooks';
import {call} from '../api.js';
import {formatTime} from '../format.js';
import {Note, formAll, formValues} from '../ui.jsx';
import {Failure} from './common.jsx';

const NeedSession = ({what}) => (
  <Note kind="warn">Managing {what} needs a signed-in account (you are using a pasted token). <a href="/acc/">Sign in with your account</a></Note>
);

// useList loads a list from path (field of the answer), again on reload().
function useList(path, field) {
  const [list, setList] = useState(null); // null while loading, or an error
  const reload = () => call(path).then((v) => setList(v[field]), (err) => setList(err));
  useEffect(() => { reload(); }, []);
  return [list, reload];
}

function ListOf({list, what, children}) {
  if (list === null) return <p class="empty">Loading…</p>;
  if (list instanceof Error) return list.status === 401 ? <NeedSession what={what} /> : <Failure error={list} />;
  return children;
}

const defaultAPIs = ['maps', 'sql'];

// GrantPicker adds grants: a connection, then a table or schema of it (the
// catalog), everything (*), or a SQL query.
function GrantPicker({grants, setGrants, onError}) {
  const [conns, setConns] = useState([]);
  const [conn, setConn] = useState('');
  const [sources, setSources] = useState([]);
  const [source, setSource] = useState('*');
  const [query, setQuery] = useState('');
  useEffect(() => {
    call('/api/v3/connections').then(({connections}) => {
      setConns(connections.map((c) => c.name));
      setConn(connections[0]?.name || '');
    }, () => {});
  }, []);
  useEffect(() => {
    setSources([]);
    setSource('*');
    if (!conn) return;
    let stale = false;
    (async () => {
      const found = [];
      const at = `/workspace-api/connections/${encodeURIComponent(conn)}`;
      const {schemas} = await call(`${at}/schemas`);
      for (const s of schemas) {
        found.push([`${s.name}.*`, `${s.name}.* (every table)`]);
        const {tables} = await call(`${at}/schemas/${encodeURIComponent(s.name)}/tables`);
        for (const t of tables) found.push([t.name, t.name]);
      }
      if (!stale) setSources(found);
    })().catch((err) => !stale && onError(err));
    return () => { stale = true; };
  }, [conn]);
  const add = () => {
    if (!conn) return;
    setGrants([...grants, {connection_name: conn, source: query.trim() || source}]);
    setQuery('');
  };
  return (
    <>
      <div class="row">
        <label>Connection
          <select id="token-conn" value={conn} onChange={(e) => setConn(e.currentTarget.value)}>{conns.map((c) => <option key={c} value={c}>{c}</option>)}</select>
        </label>
        <label>Source
          <select id="token-source" value={source} onChange={(e) => setSource(e.currentTarget.value)}>
            <option value="*">* (everything)</option>
            {sources.map(([value, label]) => <option key={value} value={value}>{label}</option>)}
          </select>
        </label>
        <input type="text" id="token-query" placeholder="or a SQL query" class="grow" value={query} onInput={(e) => setQuery(e.currentTarget.value)} />
        <button type="button" id="token-add-grant" onClick={add}>Add grant</button>
      </div>
      <ul id="token-grants">
        {grants.map((g, i) => (
          <li key={i}><code>{g.source}</code> on {g.connection_name} <button type="button" class="small" onClick={() => setGrants(grants.filter((_, j) => j !== i))}>×</button></li>
        ))}
      </ul>
    </>
  );
}

function TokensTable({tokens, reload}) {
  if (tokens.length === 0) return <p class="empty">No tokens yet.</p>;
  const revoke = async (t) => {
    if (!confirm(`Revoke ${t.name || t.id}? Apps using it stop working within a second.`)) return;
    await call('/api/v3/tokens/' + t.id, {method: 'DELETE'});
    reload();
  };
  return (
    <table id="tokens-table">
      <thead><tr>{['Name', 'Grants', 'APIs', 'Expires', 'Token', ''].map((x) => <th key={x}>{x}</th>)}</tr></thead>
      <tbody>
        {tokens.map((t) => (
          <tr key={t.id} data-id={t.id}>
            <td>{t.name || '—'}</td>
            <td class="code">{t.grants.map((g) => `${g.source} on ${g.connection_name}`).join(', ')}</td>
            <td>{t.allowed_apis.join(', ')}</td>
            <td>{t.expiration_date ? formatTime(t.expiration_date) : 'never'}</td>
            <td><button type="button" class="small" onClick={() => navigator.clipboard?.writeText(t.token)}>Copy</button></td>
            <td><button type="button" class="small" onClick={() => revoke(t)}>Revoke</button></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Tokens() {
  const [tokens, reload] = useList('/api/v3/tokens', 'tokens');
  const [msg, setMsg] = useState(null);
  const [grants, setGrants] = useState([]);
  const [apis, setAPIs] = useState(defaultAPIs);
  const create = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = formValues(e);
    const body = {name: f.name, grants, allowed_apis: formAll(e, 'api'), referers: f.referers.split(/[\s,]+/).filter(Boolean)};
    if (f.expires) body.expiration_date = new Date(f.expires).toISOString().replace(/\.\d+Z$/, 'Z');
    try {
      const t = await call('/api/v3/tokens', {method: 'POST', body});
      setMsg(<Note kind="ok">Token created. Copy it now or later from the list: <code id="new-token" class="wrap">{t.token}</code></Note>);
      setGrants([]);
      setAPIs(defaultAPIs);
      form.reset();
      reload();
    } catch (err) {
      setMsg(<Failure error={err} />);
    }
  };
  const toggle = (a) => setAPIs(apis.includes(a) ? apis.filter((x) => x !== a) : [...apis, a]);
  return (
    <section class="card" id="tokens">
      <h2>API access tokens</h2>
      <div id="tokens-message">{msg}</div>
      <div><ListOf list={tokens} what="tokens"><TokensTable tokens={tokens} reload={reload} /></ListOf></div>
      <h3>New token</h3>
      <form id="token-form" onSubmit={create}>
        <label>Name<input type="text" name="name" maxlength={200} /></label>
        <GrantPicker grants={grants} setGrants={setGrants} onError={(err) => setMsg(<Failure error={err} />)} />
        <div class="row">
          {['maps', 'sql', 'imports', 'lds'].map((a) => (
            <label key={a} class="check"><input type="checkbox" name="api" value={a} checked={apis.includes(a)} onChange={() => toggle(a)} />{a}</label>
          ))}
        </div>
        <label>Allowed origins (optional, space-separated)<input type="text" name="referers" placeholder="https://app.example.com" /></label>
        <label>Expires (optional)<input type="datetime-local" name="expires" /></label>
        <div class="actions"><span class="grow" /><button type="submit" class="primary" id="token-create">Create token</button></div>
      </form>
    </section>
  );
}

// ConnectionRow is a connection, to test or (its owner's) delete.
function ConnectionRow({c, remove}) {
  const [result, setResult] = useState('');
  const test = async () => {
    setResult('testing…');
    const r = await call(`/api/v3/connections/${c.id}/test`, {method: 'POST'}).catch((err) => ({ok: false, error: err.message}));
    setResult(r.ok ? `ok (${r.latency_ms} ms${r.postgis ? ', PostGIS ' + r.postgis : ''})` : `failed: ${r.error}`);
  };
  return (
    <tr data-name={c.name}>
      <td>{c.name}</td><td>{c.host || ''}</td><td>{c.database || ''}</td><td>{c.privacy}</td>
      <td>
        <button type="button" class="small" onClick={test}>Test</button>{' '}
        {c.can_edit && <button type="button" class="small" onClick={() => remove(c)}>Delete</button>}{' '}
        <span class="muted">{result}</span>
      </td>
    </tr>
  );
}

export function Connections() {
  const [connections, reload] = useList('/api/v3/connections', 'connections');
  const [msg, setMsg] = useState(null);
  const remove = async (c) => {
    if (!confirm(`Delete the connection ${c.name}?`)) return;
    try {
      await call('/api/v3/connections/' + c.id, {method: 'DELETE'});
      reload();
    } catch (err) {
      setMsg(<Failure error={err} />);
    }
  };
  const create = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = formValues(e);
    try {
      await call('/api/v3/connections', {method: 'POST', body: {name: f.name, privacy: f.privacy,
        credentials: {host: f.host, port: Number(f.port) || 5432, database: f.database, username: f.username, password: f.password}}});
      setMsg(<Note kind="ok">Connection {f.name} saved.</Note>);
      form.reset();
      reload();
    } catch (err) {
      setMsg(<Failure error={err} />);
    }
  };
  return (
    <section class="card" id="connections">
      <h2>Connections</h2>
      <div id="connections-message">{msg}</div>
      <div>
        <ListOf list={connections} what="connections">
          <table id="connections-table">
            <thead><tr>{['Name', 'Host', 'Database', 'Privacy', ''].map((x) => <th key={x}>{x}</th>)}</tr></thead>
            <tbody>
              {connections?.map?.((c) => <ConnectionRow key={c.id} c={c} remove={remove} />)}
            </tbody>
          </table>
        </ListOf>
      </div>
      <h3>New connection (PostgreSQL / PostGIS)</h3>
      <form id="connection-form" onSubmit={create}>
        <div class="row">
          <label>Name<input type="text" name="name" required pattern="[A-Za-z0-9][A-Za-z0-9_-]{0,62}" /></label>
          <label>Privacy
            <select name="privacy"><option value="shared">shared with the organization</option><option value="private">private to me</option></select>
          </label>
        </div>
        <div class="row">
          <label>Host<input type="text" name="host" required /></label>
          <label>Port<input type="number" name="port" defaultValue="5432" min={1} max={65535} /></label>
          <label>Database<input type="text" name="database" required /></label>
        </div>
        <div class="row">
          <label>User<input type="text" name="username" required autocomplete="off" /></label>
          <label>Password (stored encrypted, never shown again)<input type="password" name="password" autocomplete="new-password" /></label>
        </div>
        <div class="actions"><span class="grow" /><button type="submit" class="primary" id="connection-create">Save connection</button></div>
      </form>
    </section>
  );
}
