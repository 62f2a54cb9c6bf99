// list.jsx: /maps, the maps the user made, those shared with them and the
// organization's; a new map; open, duplicate, delete.
import {useEffect, useState} from 'preact/hooks';
import {maps} from './api.js';
import {emptyConfig} from './style.js';

const SCOPES = [['mine', 'My maps'], ['shared', 'Shared with me'], ['org', 'Organization']];

export function MapsList({me}) {
  const canCreate = ['admin', 'editor'].includes(me.user.role);
  const [scope, setScope] = useState(canCreate ? 'mine' : 'shared');
  const [q, setQ] = useState('');
  const [list, setList] = useState(null);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const t = setTimeout(() => maps.list({scope, q, limit: 100}).then((r) => setList(r.maps ?? r.results ?? [])).catch((e) => setError(e.message)), q ? 250 : 0);
    return () => clearTimeout(t);
  }, [scope, q, tick]);
  const create = async () => {
    try {
      const m = await maps.create({title: 'Untitled map', keplerMapConfig: emptyConfig()});
      location.assign(`/maps/${m.id}`);
    } catch (e) {
      setError(e.message);
    }
  };
  const act = (fn) => fn().then(() => setTick((t) => t + 1)).catch((e) => setError(e.message));
  return (
    <div class="page">
      <div class="page-head">
        <h1>Maps</h1>
        <span class="grow" />
        <input type="search" placeholder="Search maps" value={q} onInput={(e) => setQ(e.currentTarget.value)} aria-label="Search maps" />
        {canCreate && <button type="button" class="primary" data-testid="new-map" onClick={create}>New map</button>}
      </div>
      <div class="tabs" role="tablist">
        {SCOPES.map(([s, label]) => <button key={s} type="button" role="tab" aria-selected={scope === s} onClick={() => setScope(s)}>{label}</button>)}
      </div>
      {error && <div class="note error" role="alert">{error}</div>}
      {list === null ? <p class="muted">Loading…</p> : list.length === 0 ? <p class="muted empty">{scope === 'mine' ? 'No maps yet. Make one with New map, or from a table in Data.' : 'No maps here yet.'}</p> : (
        <ul class="map-cards">
          {list.map((m) => (
            <li key={m.id} class="map-card" data-map-id={m.id}>
              <a href={m.canEdit ? `/maps/${m.id}` : `/map/${m.id}`} class="thumb">
                {m.thumbnailUrl ? <img src={m.thumbnailUrl} alt="" loading="lazy" /> : <span class="no-thumb">No preview yet</span>}
              </a>
              <div class="map-card-body">
                <a href={m.canEdit ? `/maps/${m.id}` : `/map/${m.id}`} class="map-card-title">{m.title}</a>
                <div class="muted small">{m.ownerEmail} · {new Date(m.updatedAt).toLocaleDateString()} · <span class={`badge ${m.privacy.privacy}`}>{m.privacy.privacy === 'shared' ? `shared (${m.privacy.sharingScope})` : m.privacy.privacy}</span>{m.publishedAt ? ' · published' : ''}</div>
                <div class="actions">
                  {m.publishedAt && <a href={`/map/${m.id}`} class="small">View</a>}
                  {canCreate && <button type="button" class="small" onClick={() => act(() => maps.duplicate(m.id))}>Duplicate</button>}
                  {m.canEdit && <button type="button" class="small danger" onClick={() => confirm(`Delete "${m.title}"?`) && act(() => maps.remove(m.id))}>Delete</button>}
                </div>
              </div>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
