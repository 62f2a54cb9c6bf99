// The accounts app (/acc/): sign in with email and password (a session
// cookie, /accounts-api), single sign-on or an access token; sign up (the
// first user of an install, an invite link, or open sign-up); forgotten
// password and reset; the profile (name, password, sign out, sign out
// everywhere); and, for admins, the organization's people (/acc/users:
// roles, invites, removal). Pages: /acc/, /acc/signup, /acc/invite,
// /acc/forgot, /acc/reset, /acc/users; other paths show "not found".
import {useEffect, useState} from 'preact/hooks';
import '../pages.css';
import {call, session as me} from '../api.js';
import {storedToken, tokenSession} from '../session.js';
import {ErrorNote, Note, mount, setTitle} from '../ui.jsx';
import {Forgot, PasswordSignIn, Reset, SignUp, TokenSignIn} from './signin.jsx';
import {Profile, TokenAccount} from './account.jsx';
import {People} from './people.jsx';

// route finds what the page at path shows: {title, view(flash, go)}.
async function route(path) {
  switch (path) {
  case '/acc': {
    const s = tokenSession();
    const who = await me();
    if (who) return {title: 'Account', view: (flash, go) => <Profile who={who} flash={flash} go={go} />};
    if (s && !storedToken().startsWith('mut_')) return {title: 'Account', view: (flash, go) => <TokenAccount s={s} flash={flash} go={go} />};
    const status = await call('/accounts-api/status').catch(() => null);
    return {title: 'Sign in', view: (flash) => <><PasswordSignIn flash={flash} status={status} /><TokenSignIn /></>};
  }
  case '/acc/signup':
  case '/acc/invite': {
    const invite = new URLSearchParams(location.search).get('token') || '';
    let info = null;
    if (invite) {
      try {
        info = await call('/accounts-api/invites/' + encodeURIComponent(invite));
      } catch (err) {
        return {title: 'Sign up', view: () => (
          <section class="card"><h1>Invite</h1><ErrorNote error={err} /><p><a href="/acc/">Sign in</a></p></section>
        )};
      }
    }
    return {title: 'Sign up', view: (flash) => <SignUp flash={flash} invite={invite} info={info} />};
  }
  case '/acc/forgot':
    return {title: 'Forgotten password', view: () => <Forgot />};
  case '/acc/reset':
    return {title: 'New password', view: (flash, go) => <Reset go={go} />};
  case '/acc/users': {
    const who = await me();
    return {title: 'People', view: () => (who?.user.role === 'admin' ? <People who={who} /> : (
      <section class="card"><h1>People</h1><Note kind="error">Only administrators manage people.</Note><p><a href="/acc/">Your account</a></p></section>
    ))};
  }
  default:
    return {title: 'Not found', view: () => (
      <section class="card">
        <h1>Not found</h1>
        <p>The accounts app has no page at <code>{location.pathname}</code>.</p>
        <p><a href="/acc/">Go to your account</a></p>
      </section>
    )};
  }
}

// Page shows what route finds for the current path.
function Page({flash, go}) {
  const [page, setPage] = useState(null);
  useEffect(() => {
    route(location.pathname.replace(/\/$/, '') || '/acc').then(setPage, (err) => setPage({
      title: 'Error',
      view: () => <section class="card"><h1>Error</h1><ErrorNote error={err} /></section>,
    }));
  }, []);
  useEffect(() => {
    if (!page) return;
    setTitle(page.title);
    document.querySelector('#login-email, #signup-email:not([readonly]), #signup-name')?.focus();
  }, [page]);
  return page && page.view(flash, go);
}

// App shows the page again, with a message, after signing out or in.
function App() {
  const [shown, setShown] = useState({n: 0, flash: null});
  const go = (flash) => setShown((s) => ({n: s.n + 1, flash}));
  return <Page key={shown.n} flash={shown.flash} go={go} />;
}

mount(<App />);
