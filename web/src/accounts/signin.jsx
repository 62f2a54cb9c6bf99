// signin.jsx: signing in (email and password, single sign-on, or a pasted
// access token), signing up (the first user of an install, an invite
// link, or open sign-up), and the forgotten password and its reset.
import {useState} from 'preact/hooks';
import {call} from '../api.js';
import {decodeToken, expired, expiresAt, notYetValid, saveToken, sessionToken} from '../session.js';
import {formatTime, fromNow} from '../format.js';
import {ErrorNote, Note, formValues} from '../ui.jsx';
import {checkWithServer, next} from './signedin.js';

// afterSignIn picks up a data token for the workspace (editors) and goes on.
async function afterSignIn() {
  await sessionToken();
  location.assign(next);
}

// useSubmit runs fn on a form's submit, with the button disabled meanwhile;
// an error fn throws is shown in the message box. fn returning true keeps
// the button disabled (the page is leaving).
function useSubmit(fn) {
  const [busy, setBusy] = useState(false);
  const [msg, setMsg] = useState(null);
  const onSubmit = async (e) => {
    e.preventDefault();
    setMsg(null);
    setBusy(true);
    let leaving = false;
    try {
      leaving = await fn(e, setMsg);
    } catch (err) {
      setMsg(<ErrorNote error={err} />);
    }
    if (!leaving) setBusy(false);
  };
  return {busy, msg, onSubmit};
}

const urlError = new URLSearchParams(location.search).get('error');

export function PasswordSignIn({flash, status}) {
  const {busy, msg, onSubmit} = useSubmit(async (e) => {
    const {email, password} = formValues(e);
    await call('/accounts-api/login', {method: 'POST', body: {email, password}});
    await afterSignIn();
    return true;
  });
  return (
    <section class="card" id="password-signin">
      <h1>Sign in</h1>
      {flash}
      {urlError && <Note kind="error">{urlError}</Note>}
      {status?.setupRequired && (
        <Note kind="ok">This install has no account yet. <a href="/acc/signup" id="setup-link">Create the first one</a>: it becomes the administrator.</Note>
      )}
      <form id="login" onSubmit={onSubmit}>
        <label>Email<input type="email" name="email" id="login-email" required autocomplete="username" /></label>
        <label>Password<input type="password" name="password" id="login-password" required autocomplete="current-password" /></label>
        <div class="actions">
          <a href="/acc/forgot">Forgot the password?</a>
          {status?.signupPolicy === 'open' && <a href="/acc/signup">Create an account</a>}
          <span class="grow" />
          <button type="submit" class="primary" id="login-submit" disabled={busy}>Sign in</button>
        </div>
        <div id="login-message">{msg}</div>
      </form>
      {status?.sso && (
        <div class="actions">
          <a href={status.sso.login + '?next=' + encodeURIComponent(next)} class="button" id="sso-button">Sign in with {status.sso.name}</a>
        </div>
      )}
    </section>
  );
}

export function TokenSignIn() {
  const {busy, msg, onSubmit} = useSubmit(async (e, setMsg) => {
    const {token, remember} = formValues(e);
    const value = token.trim();
    const {claims} = decodeToken(value);
    if (expired(claims)) {
      setMsg(<Note kind="error">This token expired {fromNow(expiresAt(claims))} ({formatTime(expiresAt(claims))}).</Note>);
      return false;
    }
    if (notYetValid(claims)) {
      setMsg(<Note kind="error">This token is not valid before {formatTime(claims.nbf * 1000)}.</Note>);
      return false;
    }
    try {
      await checkWithServer(value, claims);
    } catch (err) {
      setMsg(<Note kind="error">The server refused this token: {err.message}</Note>);
      return false;
    }
    saveToken(value, !!remember);
    location.assign(next);
    return true;
  });
  return (
    <section class="card">
      <h2>Or sign in with an access token</h2>
      <p class="muted">Paste an access token. An administrator makes one with <code>meridian token create --grant CONN:SOURCE --api maps,sql,imports</code>.</p>
      <form id="signin" onSubmit={onSubmit}>
        <label>Access token
          <textarea id="token" name="token" rows={5} class="code" required autocomplete="off" spellcheck={false} placeholder="eyJhbGciOiJFZERTQSIs…" />
        </label>
        <div class="actions">
          <label class="check"><input type="checkbox" id="remember" name="remember" />Keep me signed in on this browser</label>
          <span class="grow" />
          <button type="submit" class="primary" disabled={busy}>Sign in</button>
        </div>
        <div id="signin-message">{msg}</div>
      </form>
    </section>
  );
}

// SignUp: invite is the invite link's token and info whom it is for
// ({email, org, role}), or both empty.
export function SignUp({flash, invite, info}) {
  const {busy, msg, onSubmit} = useSubmit(async (e, setMsg) => {
    const f = formValues(e);
    if (f.password !== f.password2) {
      setMsg(<Note kind="error">The two passwords differ.</Note>);
      return false;
    }
    await call('/accounts-api/signup', {method: 'POST', body: {email: f.email, name: f.name, password: f.password, invite: invite || undefined}});
    await afterSignIn();
    return true;
  });
  return (
    <section class="card" id="signup">
      <h1>{info ? `Join ${info.org}` : 'Create an account'}</h1>
      {flash}
      {info && <p class="muted" id="invite-info">You are invited as {info.role}.</p>}
      <form onSubmit={onSubmit}>
        <label>Email<input type="email" name="email" id="signup-email" required autocomplete="username" value={info?.email} readonly={!!info} /></label>
        <label>Name<input type="text" name="name" id="signup-name" maxlength={200} autocomplete="name" /></label>
        <label>Password (10 characters or more)<input type="password" name="password" id="signup-password" required minlength={10} autocomplete="new-password" /></label>
        <label>Password again<input type="password" name="password2" id="signup-password2" required autocomplete="new-password" /></label>
        <div class="actions">
          <a href="/acc/">I have an account</a>
          <span class="grow" />
          <button type="submit" class="primary" id="signup-submit" disabled={busy}>Create the account</button>
        </div>
        <div id="signup-message">{msg}</div>
      </form>
    </section>
  );
}

export function Forgot() {
  const {msg, onSubmit} = useSubmit(async (e, setMsg) => {
    const r = await call('/accounts-api/password/forgot', {method: 'POST', body: {email: formValues(e).email}});
    setMsg(<Note kind="ok">{r.status}.</Note>);
    return false;
  });
  return (
    <section class="card">
      <h1>Forgotten password</h1>
      <form onSubmit={onSubmit}>
        <label>Email<input type="email" name="email" required autocomplete="username" /></label>
        <div class="actions"><span class="grow" /><button type="submit" class="primary">Send a reset link</button></div>
        <div id="forgot-message">{msg}</div>
      </form>
    </section>
  );
}

// Reset sets a new password with the reset link's token, then shows the
// sign-in (go).
export function Reset({go}) {
  const token = new URLSearchParams(location.search).get('token') || '';
  const {msg, onSubmit} = useSubmit(async (e) => {
    await call('/accounts-api/password/reset', {method: 'POST', body: {token, password: formValues(e).password}});
    history.replaceState(null, '', '/acc/');
    go(<Note kind="ok">Password changed. Sign in with the new one.</Note>);
    return true;
  });
  return (
    <section class="card">
      <h1>New password</h1>
      <form onSubmit={onSubmit}>
        <label>New password (10 characters or more)<input type="password" name="password" required minlength={10} autocomplete="new-password" /></label>
        <div class="actions"><span class="grow" /><button type="submit" class="primary">Set the password</button></div>
        <div id="reset-message">{msg}</div>
      </form>
    </section>
  );
}
