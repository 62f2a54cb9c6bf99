// The workspace (/): imports (list, upload a file or import a URL,
// cancel), SQL (run a read-only query, submit a batch job, map a query),
// batch SQL jobs (list, cancel), map previews of tables, API access tokens
// and connections, through the public APIs with the signed-in token
// (session.js). Without a token it exchanges the browser session for one,
// and without a session it sends the browser to the accounts app's
// sign-in.
//
// Views: / imports, /sql, /jobs, /preview (a token's one-layer map
// preview), /tokens, /connections; any other path shows "not found".
// Maps (/maps, /map/{id}) and the Data Explorer (/data) are the
// Builder's.
import {useEffect, useState} from 'preact/hooks';
import '../pages.css';
import {session as me, signInURL} from '../api.js';
import {connections, expiresAt, sessionToken, signOut, tokenSession} from '../session.js';
import {formatTime} from '../format.js';
import {Slot, mount, setTitle} from '../ui.jsx';
import {Card, RouteLink, ws} from './common.jsx';
import {Imports} from './imports.jsx';
import {Jobs, SQL} from './sql.jsx';
import {Preview} from './preview.jsx';
import {Connections, Tokens} from './manage.jsx';

const views = {
  '/': ['Imports', Imports],
  '/imports': ['Imports', Imports],
  '/sql': ['SQL', SQL],
  '/jobs': ['Jobs', Jobs],
  '/preview': ['Map preview', Preview],
  '/tokens': ['Tokens', Tokens],
  '/connections': ['Connections', Connections],
};

// The bar's links; /maps and /data are the Builder's pages.
const links = [['/maps', 'Maps'], ['/data', 'Data'], ['/', 'Imports'], ['/sql', 'SQL'], ['/jobs', 'Jobs'],
  ['/preview', 'Preview'], ['/tokens', 'Tokens'], ['/connections', 'Connections']];

const NotFound = () => (
  <Card id="not-found" title="Not found">
    <p>The workspace has no page at <code>{location.pathname}</code>. <RouteLink href="/">Go to the imports</RouteLink></p>
  </Card>
);

// Who links to the account and signs out.
function Who() {
  const [email, setEmail] = useState('');
  useEffect(() => {
    me().then((who) => who && setEmail(who.user.email), () => {});
  }, []);
  const exp = expiresAt(ws.claims);
  const out = async () => {
    await signOut();
    location.assign('/acc/');
  };
  return (
    <>
      <a href="/acc/" id="account-link" title={`Token ${ws.claims.jti}` + (exp ? `, expires ${formatTime(exp)}` : '')}>{email || ws.claims.sub || 'Account'}</a>
      <button type="button" class="small" id="signout" onClick={out}>Sign out</button>
    </>
  );
}

function App() {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    // Same-app links change the view without reloading the page.
    const click = (e) => {
      const a = e.target.closest('a');
      if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
      if (!(a.closest('#nav') || a.hasAttribute('data-route')) || a.origin !== location.origin) return;
      if (!(a.pathname in views)) return; // another app's page (the Builder's /maps, /data)
      e.preventDefault();
      if (a.pathname !== location.pathname) history.pushState(null, '', a.pathname);
      setPath(a.pathname);
    };
    const pop = () => setPath(location.pathname);
    document.addEventListener('click', click);
    window.addEventListener('popstate', pop);
    return () => {
      document.removeEventListener('click', click);
      window.removeEventListener('popstate', pop);
    };
  }, []);
  const [title, View] = views[path] || ['Not found', NotFound];
  useEffect(() => setTitle(title), [title]);
  return (
    <>
      <Slot id="nav">{links.map(([href, label]) => <a key={href} href={href} aria-current={href === path ? 'page' : undefined}>{label}</a>)}</Slot>
      <Slot id="who"><Who /></Slot>
      <View key={path} />
    </>
  );
}

const s = tokenSession() || await sessionToken();
if (!s) {
  location.replace(signInURL());
} else {
  Object.assign(ws, {token: s.token, claims: s.claims, conns: connections(s.claims)});
  mount(<App />);
}
