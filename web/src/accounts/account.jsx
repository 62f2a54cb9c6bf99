// account.jsx: who is signed in. A browser session shows the user's
// profile (name, password, sign out, sign out everywhere); a pasted access
// token shows what the token grants.
import {useEffect, useState} from 'preact/hooks';
import {call} from '../api.js';
import {expiresAt, forgetToken, remembered, signOut, sourceKind} from '../session.js';
import {formatTime, fromNow} from '../format.js';
import {ErrorNote, Note, formValues} from '../ui.jsx';
import {checkWithServer, next} from './signedin.js';

export function Profile({who, flash, go}) {
  const u = who.user;
  const [msg, setMsg] = useState(null);
  const out = async (everywhere) => {
    await signOut(everywhere);
    history.replaceState(null, '', '/acc/');
    go(<Note kind="ok">{everywhere ? 'Signed out on every device.' : 'Signed out.'}</Note>);
  };
  const save = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = formValues(e);
    const body = {name: f.name};
    if (f.password) Object.assign(body, {password: f.password, currentPassword: f.current});
    try {
      await call('/accounts-api/me', {method: 'PATCH', body});
      setMsg(<Note kind="ok">Saved.</Note>);
      form.elements.password.value = form.elements.current.value = '';
    } catch (err) {
      setMsg(<ErrorNote error={err} />);
    }
  };
  return (
    <section class="card" id="profile">
      <h1>Your account</h1>
      {flash}
      <dl class="kv">
        <dt>Email</dt><dd id="profile-email">{u.email}</dd>
        <dt>Role</dt><dd id="profile-role">{u.role}</dd>
        <dt>Organization</dt><dd id="profile-org">{who.org.name}</dd>
      </dl>
      <form onSubmit={save}>
        <label>Name<input type="text" name="name" maxlength={200} defaultValue={u.name} /></label>
        <label>New password (leave empty to keep it)<input type="password" name="password" minlength={10} autocomplete="new-password" /></label>
        <label>Current password<input type="password" name="current" autocomplete="current-password" /></label>
        <div class="actions"><span class="grow" /><button type="submit">Save</button></div>
        <div id="profile-message">{msg}</div>
      </form>
      <div class="actions">
        {u.role === 'admin' && <a href="/acc/users" class="button" id="people-link">People</a>}
        {(u.role === 'admin' || u.role === 'editor') && <a href={next} class="button primary" id="open-workspace">Open the workspace</a>}
        <span class="grow" />
        <button type="button" id="signout" onClick={() => out(false)}>Sign out</button>
        <button type="button" id="signout-all" onClick={() => out(true)}>Sign out everywhere</button>
      </div>
    </section>
  );
}

const covers = {everything: 'every table and query', schema: 'every table of the schema', table: 'one table', query: 'this SQL query'};

function Grants({claims}) {
  return (
    <table id="grants">
      <thead><tr><th>Connection</th><th>Source</th><th>Covers</th></tr></thead>
      <tbody>
        {claims.grants.map((g, i) => (
          <tr key={i}><td>{g.connection_name}</td><td class="code">{g.source}</td><td>{covers[sourceKind(g.source)]}</td></tr>
        ))}
      </tbody>
    </table>
  );
}

// ServerCheck asks the server whether it takes the token.
function ServerCheck({token, claims}) {
  const [state, setState] = useState({text: 'checking…'});
  useEffect(() => {
    checkWithServer(token, claims).then(
      (done) => setState({text: done ? 'accepted' : 'not checked (the token allows no imports or SQL API to ask)'}),
      (err) => setState({text: `refused: ${err.message}`, bad: true}));
  }, [token]);
  return <span id="server-check" class={state.bad ? 'err' : 'muted'}>{state.text}</span>;
}

// TokenAccount shows a pasted token: s is {token, claims}.
export function TokenAccount({s, flash, go}) {
  const c = s.claims;
  const exp = expiresAt(c);
  const out = () => {
    forgetToken();
    history.replaceState(null, '', '/acc/');
    go(<Note kind="ok">Signed out. The token was forgotten by this browser; it stays valid until it expires or is revoked (meridian token revoke).</Note>);
  };
  return (
    <section class="card" id="account">
      <h1>Signed in</h1>
      {flash}
      <dl class="kv">
        <dt>Token</dt><dd class="code">{c.jti}</dd>
        <dt>Owner</dt><dd>{c.sub || '—'}</dd>
        <dt>Organization</dt><dd>{c.org || 'default'}</dd>
        {!!c.iat && <><dt>Issued</dt><dd>{formatTime(c.iat * 1000)}</dd></>}
        <dt>Expires</dt><dd id="expiry">{exp ? `${formatTime(exp)} (${fromNow(exp)})` : 'never'}</dd>
        {!!c.nbf && <><dt>Valid from</dt><dd>{formatTime(c.nbf * 1000)}</dd></>}
        <dt>APIs</dt><dd><span class="chips" id="apis">{c.allowed_apis.map((a) => <span key={a} class="chip">{a}</span>)}</span></dd>
        <dt>Origins</dt><dd>{c.referers?.length ? c.referers.join(', ') : 'any'}</dd>
        <dt>Kept</dt><dd>{remembered() ? 'in this browser, until you sign out' : 'in this tab, until you close it or sign out'}</dd>
        <dt>Server</dt><dd><ServerCheck token={s.token} claims={c} /></dd>
      </dl>
      <h2>Grants</h2>
      <Grants claims={c} />
      <p class="muted">Decoded in your browser; the server verifies the signature, expiry and revocation on every call.</p>
      <div class="actions">
        <a href={next} class="button primary" id="open-workspace">Open the workspace</a>
        <button type="button" id="signout" onClick={out}>Sign out</button>
      </div>
    </section>
  );
}
