// lds.jsx: location data services in the editor, through Meridian's own
// LDS API: an address search that moves the map, and an isoline tool that
// adds "reachable within 5, 10 and 15 minutes" polygons around a clicked
// point as a layer of the map (a query dataset holding the polygons, so
// the published map and fetchMap draw them too).
import {useState} from 'preact/hooks';
import {call} from './api.js';
import {jumpTo} from './mapview.jsx';

async function lds(token, path, params) {
  const body = await call(`/api/v3/lds/${path}`, {token, params});
  const first = body?.[0];
  if (first?.error) throw new Error(first.error);
  return first?.value;
}

const ZOOM = {address: 16, street: 15, postal_code: 12, city: 10, state: 6, country: 4};

export function AddressSearch({token}) {
  const [q, setQ] = useState('');
  const [results, setResults] = useState(null);
  const [error, setError] = useState('');
  const search = async (e) => {
    e.preventDefault();
    setError('');
    try {
      setResults(await lds(token, 'geocoding/geocode', {address: q, limit: 5}) || []);
    } catch (err) {
      setError(err.message);
      setResults(null);
    }
  };
  const label = (r) => [r.street && `${r.housenumber || ''} ${r.street}`.trim(), r.city, r.state, r.country].filter(Boolean).join(', ');
  return (
    <form class="address-search" role="search" onSubmit={search}>
      <input type="search" name="address" placeholder="Search an address or place" value={q} onInput={(e) => setQ(e.currentTarget.value)} aria-label="Search an address or place" />
      {error && <div class="note error small">{error}</div>}
      {results && <ul class="search-results" data-testid="search-results">
        {results.length === 0 && <li class="muted">Nothing found.</li>}
        {results.map((r, i) => <li key={i}><button type="button" onClick={() => { jumpTo({longitude: r.longitude, latitude: r.latitude, zoom: ZOOM[r.kind] || 12}); setResults(null); }}>
          {label(r)} <span class="muted small">{r.kind}</span></button></li>)}
      </ul>}
    </form>
  );
}

// isolineDataset turns isolines ([{range, geom}]) into a query dataset of
// their polygons (coordinates rounded to ~10 m).
export function isolineDataset(isolines, origin, mode) {
  const round = (v) => (Array.isArray(v) ? v.map(round) : Math.round(v * 1e4) / 1e4);
  const rows = isolines.map((iso) => {
    const g = JSON.stringify({type: iso.geom.type, coordinates: round(iso.geom.coordinates)}).replace(/'/g, "''");
    return `(${Number(iso.range)}, '${g}')`;
  });
  const source = `SELECT range, (range / 60)::int AS minutes, ST_SetSRID(ST_GeomFromGeoJSON(g), 4326) AS geom FROM (VALUES ${rows.join(', ')}) AS v(range, g)`;
  return {
    id: 'ds-' + Math.random().toString(36).slice(2, 8), type: 'query', source, connectionName: null, geoColumn: 'geom',
    label: `Isolines ${mode} from ${origin.map((v) => v.toFixed(3)).join(', ')}`, columns: ['range', 'minutes'],
  };
}

export async function fetchIsolines(token, origin, mode, ranges) {
  return lds(token, 'isolines', {origin: `${origin[0]},${origin[1]}`, mode, range: ranges.join(','), range_type: 'time'});
}
