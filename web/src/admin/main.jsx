// The admin console (/admin/): nodes, edge caches, cluster purges, the
// broker's subscriptions and dead letters (replay, drop), organizations
// (create, quotas), running imports and jobs (cancel), users, the audit
// log and the effective config.
// Everything goes through the admin API (/api/admin/, control) with the
// administrator's bearer secret, kept in sessionStorage for this tab only;
// or, without one, as the signed-in user (session cookie), who must be an
// administrator. Users, imports, jobs and the audit log are an
// organization's: they need the session.
import {useEffect, useState} from 'preact/hooks';
import '../pages.css';
import {call} from '../api.js';
import {KEY, adminToken, admin, data, onRefused} from './call.js';
import {duration} from '../format.js';
import {Slot, mount} from '../ui.jsx';
import {Purge} from './purge.jsx';
import {Broker} from './broker.jsx';
import {Orgs} from './orgs.jsx';
import {Table} from './table.jsx';


function Nodes({nodes}) {
  return (
    <table id="nodes">
      <thead><tr><th>Component</th><th>Name</th><th>Version</th><th>Address</th><th>Uptime</th><th>Ready</th><th>Last heartbeat</th></tr></thead>
      <tbody>
        {nodes.map((n) => {
          const ready = n.alive ? (n.ready ? 'ready' : 'not ready') : 'stale';
          return (
            <tr key={n.component + ' ' + n.name} data-name={n.name} data-component={n.component}>
              <td>{n.component}</td><td>{n.name}</td><td>{n.version || ''}</td><td>{n.address || ''}</td>
              <td>{duration(n.uptime_seconds)}</td>
              <td class={'state-' + ready.replace(' ', '-')}>{ready}</td>
              <td>{duration(n.seconds_since_heartbeat)} ago</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function Caches({edges}) {
  return (
    <table id="caches">
      <thead><tr><th>Edge</th><th>Hit ratio</th><th>Hits</th><th>Misses</th><th>Entries</th><th>Purges</th></tr></thead>
      <tbody>
        {edges.map((e) => {
          const s = e.stats || {};
          return (
            <tr key={e.name} data-name={e.name}>
              <td>{e.name}</td>
              <td>{e.hit_ratio == null ? '–' : (100 * e.hit_ratio).toFixed(1) + ' %'}</td>
              <td>{s.hits_total || 0}</td><td>{s.misses_total || 0}</td><td>{s.entries || 0}</td><td>{s.purges_total || 0}</td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

const signInFirst = 'Sign in as an administrator (not with the admin token) to see this for your organization.';

// Work lists the running imports and batch SQL jobs, each with Cancel.
function Work({work, refresh}) {
  const [msg, setMsg] = useState('');
  const cancel = async (label, path) => {
    try {
      await data(path, {method: 'POST'});
      setMsg('Cancelled ' + label + '.');
    } catch (e) {
      setMsg('Cancel failed: ' + e.message);
    }
    refresh();
  };
  const button = (label, path) => <button type="button" class="small" onClick={() => cancel(label, path)}>Cancel</button>;
  let body;
  if (typeof work === 'string') body = work;
  else if (work.imports.length + work.jobs.length === 0) body = 'Nothing is running.';
  else {
    body = (
      <Table heads={['Kind', 'ID', 'Status', 'What', 'Since', '']} rows={[
        ...work.imports.map((i) => ['import', i.id, i.status, i.destination, new Date(i.createdAt).toLocaleTimeString(),
          button('import ' + i.id, `/api/v3/imports/${encodeURIComponent(i.id)}/cancel`)]),
        ...work.jobs.map((j) => ['SQL job', j.jobId, j.status, j.query, new Date(j.createdAt).toLocaleTimeString(),
          button('job ' + j.jobId, `/api/v3/sql/${encodeURIComponent(j.connection)}/job/${encodeURIComponent(j.jobId)}/cancel`)]),
      ]} />
    );
  }
  return <><div id="work" class="muted">{body}</div><p id="work-msg" class="muted">{msg}</p></>;
}

// load fetches what the console shows; an organization's lists need the
// session, and each says so when it cannot be had.
async function load(withToken) {
  const org = async (fn, what) => {
    if (withToken) return signInFirst;
    try {
      return await fn();
    } catch (err) {
      return `${what} not available (${err.status || err.message}).`;
    }
  };
  const work = async () => {
    let imports = [];
    let jobs = [];
    try {
      for (const st of ['pending', 'running']) {
        imports = imports.concat((await data('/api/v3/imports?status=' + st)).imports || []);
        jobs = jobs.concat((await data('/api/v3/sql/jobs?status=' + st)).jobs || []);
      }
    } catch (e) {
      return 'Imports and jobs are not available: ' + e.message;
    }
    return {imports, jobs};
  };
  const [{nodes}, {edges}, {subscriptions}, orgs, users, audit, running] = await Promise.all([
    admin('/api/admin/nodes'),
    admin('/api/admin/cache'),
    admin('/api/admin/broker/subscriptions'),
    admin('/api/admin/orgs').then((r) => r.organizations, (err) => `Organizations not available (${err.status || err.message}).`),
    org(async () => (await call('/workspace-api/users')).users, 'Users are'),
    org(async () => (await call('/workspace-api/audit', {params: {limit: 50}})).events, 'The audit log is'),
    withToken ? signInFirst : work(),
  ]);
  return {nodes, edges, subscriptions, orgs, users, audit, work: running};
}

function Console({withToken, signOut}) {
  const [config, setConfig] = useState('');
  const [state, setState] = useState(null);
  const [failed, setFailed] = useState('');
  const refresh = () => load(withToken).then((s) => {
    setState(s);
    setFailed('');
  }, (e) => e.message !== 'unauthorized' && setFailed('refresh failed: ' + e.message));
  useEffect(() => {
    admin('/api/admin/config').then(({config}) => setConfig(JSON.stringify(config, null, 2)), (e) => setConfig(e.message));
    refresh();
    const timer = setInterval(refresh, 2000);
    return () => clearInterval(timer);
  }, []);
  const ready = state ? state.nodes.filter((n) => n.alive && n.ready).length : 0;
  return (
    <div id="console">
      <Slot id="who">{withToken ? 'administrator (token)' : 'administrator'}<button type="button" onClick={signOut}>Sign out</button></Slot>
      <section class="card">
        <h2>Nodes <span class="spacer" /><span class="muted" id="nodes-summary">{failed || (state && `${ready} of ${state.nodes.length} ready`)}</span></h2>
        <Nodes nodes={state?.nodes || []} />
      </section>
      <section class="card">
        <h2>Edge caches</h2>
        <Caches edges={state?.edges || []} />
      </section>
      <Purge />
      <Broker subscriptions={state?.subscriptions || []} refresh={refresh} />
      <Orgs orgs={state?.orgs || []} refresh={refresh} />
      <section class="card">
        <h2>Running imports and jobs</h2>
        <Work work={state?.work || ''} refresh={refresh} />
      </section>
      <section class="card">
        <h2>Users</h2>
        <div id="users" class="muted">
          {typeof state?.users === 'object' ? (
            <Table heads={['Email', 'Name', 'Role', 'Since', 'State']} rows={state.users.map((u) => [
              u.email, u.name, u.role, new Date(u.createdAt).toLocaleDateString(), u.disabledAt ? 'disabled' : 'active'])} />
          ) : state?.users}
        </div>
      </section>
      <section class="card">
        <h2>Audit log</h2>
        <div id="audit" class="muted">
          {typeof state?.audit === 'object' ? (
            <Table heads={['When', 'Action', 'Target', 'Actor', 'Address']} rows={state.audit.map((e) => [
              new Date(e.at).toLocaleString(), e.action, e.target, e.actorId, e.ip])} />
          ) : state?.audit}
        </div>
      </section>
      <section class="card">
        <h2>Effective configuration <span class="muted">(secrets redacted)</span></h2>
        <pre id="config">{config}</pre>
      </section>
    </div>
  );
}

function SignIn({msg, open}) {
  const submit = (e) => {
    e.preventDefault();
    const input = e.currentTarget.elements.token;
    const token = input.value.trim();
    input.value = '';
    sessionStorage.setItem(KEY, token);
    open();
  };
  return (
    <section class="card" id="signin">
      <h2>Administrator sign-in</h2>
      <form class="row" id="signin-form" onSubmit={submit}>
        <label>Admin token <input type="password" id="token" name="token" autocomplete="off" required /></label>
        <button class="primary" type="submit">Open the console</button>
      </form>
      <p class="muted" id="signin-msg">{msg}</p>
      <p class="muted">Or <a href="/acc/?next=%2Fadmin%2F">sign in</a> as an administrator of your organization.</p>
    </section>
  );
}

function App() {
  // state: 'checking' (is the session an administrator's?), 'signin' or
  // 'open'; n counts openings, so each gets a fresh console.
  const [shown, setShown] = useState({state: adminToken() ? 'open' : 'checking', msg: '', n: 0});
  const signOut = (msg) => {
    if (!adminToken() && !msg) {
      // A session: the accounts app signs out.
      location.assign('/acc/');
      return;
    }
    sessionStorage.removeItem(KEY);
    setShown((s) => ({...s, state: 'signin', msg}));
  };
  onRefused(() => signOut('The admin token was refused.'));
  useEffect(() => {
    if (shown.state !== 'checking') return;
    // Signed in as an administrator already? Then no token is needed.
    call('/api/admin/session').then((v) => setShown((s) => ({...s, state: v.admin ? 'open' : 'signin'})),
      () => setShown((s) => ({...s, state: 'signin'})));
  }, []);
  if (shown.state === 'checking') return null;
  if (shown.state === 'signin') return <SignIn msg={shown.msg} open={() => setShown((s) => ({state: 'open', msg: '', n: s.n + 1}))} />;
  return <Console key={shown.n} withToken={!!adminToken()} signOut={() => signOut('')} />;
}

mount(<App />);
