// share.jsx: who sees the map (private, the organization, named people,
// everyone with the link), whether collaborators edit it, and publishing:
// the public link, the embed snippet and the fetchMap call.
import {useEffect, useState} from 'preact/hooks';
import {useOnChange} from './hooks.js';
import {maps, users as listUsers} from './api.js';

export function SharePanel({map, me, onPublish, onChange}) {
  const [people, setPeople] = useState([]);
  const [msg, setMsg] = useState(null);
  const [busy, setBusy] = useState(false);
  const isOwner = me?.user?.id === map.ownerId;
  useEffect(() => {
    listUsers().then((r) => setPeople(r.users.filter((u) => u.id !== map.ownerId))).catch(() => setPeople([]));
  }, []);
  const p = map.privacy;
  const modeOf = (pr) => (pr.privacy === 'shared' ? pr.sharingScope : pr.privacy);
  const pickedOf = (pr) => (pr.sharingScope === 'users' ? pr.users || [] : []);
  // The chosen audience; "specific people" waits for the first person.
  const [mode, setMode] = useState(modeOf(p));
  // The people picked, shown at once while the server saves them.
  const [picked, setPicked] = useState(pickedOf(p));
  // Follow what the server saved when it changes.
  useOnChange(JSON.stringify(p), () => {
    setMode(modeOf(p));
    setPicked(pickedOf(p));
  });
  const run = async (fn, ok) => {
    setBusy(true);
    setMsg(null);
    try {
      await fn();
      setMsg({kind: 'ok', text: ok});
    } catch (e) {
      setMsg({kind: 'error', text: e.message});
    } finally {
      setBusy(false);
    }
  };
  const setPrivacy = (privacy) => run(async () => {
    try {
      const m = await maps.patch(map.id, {privacy});
      onChange({privacy: m.privacy, publishedAt: m.publishedAt, publicUrl: m.publicUrl});
    } catch (err) {
      // Refused: show what is saved.
      setMode(modeOf(p));
      setPicked(pickedOf(p));
      throw err;
    }
  }, 'Sharing updated.');
  const link = `${location.origin}/map/${map.id}`;
  const embed = `<iframe src="${link}?embed=1" width="800" height="500" style="border:0" allowfullscreen></iframe>`;
  const code = `import {fetchMap} from '@deck.gl/carto';\nconst {initialViewState, layers, basemap} = await fetchMap({\n  cartoMapId: '${map.id}',\n  apiBaseUrl: '${location.origin}/api',\n});`;
  return (
    <section class="panel share" data-testid="share-panel">
      <h2>Share</h2>
      {!isOwner && <p class="muted">Only the map's owner ({map.ownerEmail}) changes who sees it.</p>}
      {msg && <div class={`note ${msg.kind}`} role={msg.kind === 'error' ? 'alert' : 'status'}>{msg.text}</div>}
      <fieldset disabled={!isOwner}>
        <label class="check"><input type="radio" name="privacy" value="private" checked={mode === 'private'} onChange={() => { setMode('private'); setPrivacy({privacy: 'private'}); }} /> Private: only me{map.collaborative ? ' and collaborators' : ''}</label>
        <label class="check"><input type="radio" name="privacy" value="org" checked={mode === 'org'} onChange={() => { setMode('org'); setPrivacy({privacy: 'shared', sharingScope: 'org'}); }} /> My organization</label>
        <label class="check"><input type="radio" name="privacy" value="users" checked={mode === 'users'} onChange={() => setMode('users')} /> Specific people</label>
        {mode === 'users' && <div class="checks people">
          {people.length === 0 && <p class="muted">Nobody else in the organization yet.</p>}
          {people.map((u) => <label class="check" key={u.id}><input type="checkbox" name="share-user" value={u.email} checked={picked.includes(u.id)}
            onChange={(e) => {
              const users = e.currentTarget.checked ? [...picked, u.id] : picked.filter((x) => x !== u.id);
              setPicked(users);
              setPrivacy(users.length ? {privacy: 'shared', sharingScope: 'users', users} : {privacy: 'private'});
            }} /> <span class="who">{u.name || u.email} <span class="muted">{u.name ? `${u.email} · ` : ''}{u.role}</span></span></label>)}
        </div>}
        <label class="check"><input type="radio" name="privacy" value="public" checked={mode === 'public'} onChange={() => { setMode('public'); setPrivacy({privacy: 'public'}); }} /> Public: anyone with the link</label>
        <label class="check"><input type="checkbox" name="collaborative" checked={map.collaborative} onChange={(e) => { const v = e.currentTarget.checked; run(async () => { await maps.patch(map.id, {collaborative: v}); onChange({collaborative: v}); }, v ? 'Editors it is shared with can now edit it.' : 'Only you edit it now.'); }} /> Collaborators edit it too</label>
      </fieldset>
      <h2>Publish</h2>
      <p class="muted">{map.publishedAt ? `Published ${new Date(map.publishedAt).toLocaleString()}. Viewers see that version until you publish again.` : 'Not published: people it is shared with see nothing until you publish.'}</p>
      <div class="actions">
        <button type="button" class="primary" disabled={!isOwner || busy} data-testid="publish" onClick={() => run(onPublish, 'Published.')}>{map.publishedAt ? 'Publish changes' : 'Publish'}</button>
        {map.publishedAt && <button type="button" disabled={!isOwner || busy} onClick={() => run(async () => { await maps.unpublish(map.id); onChange({publishedAt: null, privacy: {privacy: 'private', sharingScope: '', users: []}}); }, 'Unpublished: the map token is revoked.')}>Unpublish</button>}
      </div>
      {map.publishedAt && <>
        <label>Link <input type="text" readOnly value={link} data-testid="public-link" onFocus={(e) => e.currentTarget.select()} /></label>
        <label>Embed <textarea readOnly rows="3" class="code" data-testid="embed-snippet" value={embed} onFocus={(e) => e.currentTarget.select()} /></label>
        <label>In your deck.gl app <textarea readOnly rows="5" class="code" value={code} /></label>
      </>}
    </section>
  );
}
