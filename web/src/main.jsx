// main.jsx: the Builder's routes. /maps lists maps, /maps/{id} edits one,
// /map/{id} shows a published map (no sign-in needed), /data is the Data
// Explorer. The workspace's other pages (imports, SQL, jobs, tokens,
// connections) are the workspace app's, linked from the same bar.
import {render} from 'preact';
import {useEffect, useState} from 'preact/hooks';
import 'maplibre-gl/dist/maplibre-gl.css';
import './app.css';
import {session, signInURL, call} from './api.js';
import {MapsList} from './list.jsx';
import {Editor} from './editor.jsx';
import {Viewer} from './viewer.jsx';
import {Explorer} from './explorer.jsx';
import {SQLConsole} from './sqlconsole.jsx';

function Bar({me, here}) {
  const links = [['/maps', 'Maps'], ['/data', 'Data'], ['/data/sql', 'SQL'], ['/', 'Imports'], ['/jobs', 'Jobs'], ['/tokens', 'Tokens'], ['/connections', 'Connections']];
  const signOut = async () => {
    sessionStorage.clear();
    await call('/accounts-api/logout', {method: 'POST'}).catch(() => {});
    location.assign('/acc/');
  };
  return (
    <header class="bar">
      <a class="brand" href="/maps">Meridian</a>
      <nav aria-label="Workspace">
        {links.map(([href, label]) => <a key={href} href={href} aria-current={here === href ? 'page' : undefined}>{label}</a>)}
        {me.user.role === 'admin' && <a href="/admin/">Admin</a>}
      </nav>
      <div class="who"><span>{me.user.email} · {me.user.role}</span><button type="button" class="small" onClick={signOut}>Sign out</button></div>
    </header>
  );
}

function App() {
  const path = location.pathname.replace(/\/+$/, '') || '/';
  const viewer = /^\/map\/([^/]+)$/.exec(path);
  const [me, setMe] = useState(undefined);
  useEffect(() => {
    if (viewer) return;
    session().then((s) => {
      if (!s) location.replace(signInURL());
      else setMe(s);
    }).catch(() => setMe(null));
  }, []);
  if (viewer) return <Viewer id={decodeURIComponent(viewer[1])} embed={new URLSearchParams(location.search).has('embed')} />;
  if (me === undefined) return <div class="page muted">Loading…</div>;
  if (me === null) return <div class="page"><div class="note error" role="alert">The server did not answer. <a href={signInURL()}>Sign in</a></div></div>;
  const edit = /^\/maps\/([^/]+)$/.exec(path);
  if (edit) return <Editor id={decodeURIComponent(edit[1])} me={me} />;
  return (
    <>
      <Bar me={me} here={path === '/data/sql' ? '/data/sql' : path.startsWith('/data') ? '/data' : '/maps'} />
      {path === '/data/sql' ? <SQLConsole me={me} /> : path.startsWith('/data') ? <Explorer me={me} /> : <MapsList me={me} />}
    </>
  );
}

render(<App />, document.getElementById('app'));
