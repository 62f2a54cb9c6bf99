// preview.jsx: the workspace's map preview (/preview): the tiles engine's
// one-layer MapLibre page of a table the token covers, in a new tab.
import {useState} from 'preact/hooks';
import {hasAPI, sourceKind} from '../session.js';
import {Card, ConnSelect, NeedAPI, PreviewLink, previewURL, ws} from './common.jsx';

function Form() {
  const [conn, setConn] = useState(ws.conns[0]);
  const tables = ws.claims.grants.filter((g) => sourceKind(g.source) === 'table');
  const wide = ws.claims.grants.filter((g) => !['table', 'query'].includes(sourceKind(g.source)));
  const open = (e) => {
    e.preventDefault();
    window.open(previewURL(conn, {name: e.currentTarget.elements.table.value.trim()}), '_blank', 'noopener,noreferrer');
  };
  return (
    <Card id="maps" title="Map preview">
      <form class="row" id="map-form" onSubmit={open}>
        <label>Connection<ConnSelect id="map-connection" value={conn} onChange={(e) => setConn(e.currentTarget.value)} /></label>
        <label class="grow">Table
          <input type="text" id="map-table" name="table" required list="map-tables" placeholder="schema.table" />
          <datalist id="map-tables">
            {tables.filter((g) => g.connection_name === conn).map((g) => <option key={g.source} value={g.source} />)}
          </datalist>
        </label>
        <button type="submit" class="primary">Open the map</button>
      </form>
      <p class="muted">The preview opens in a new tab, drawn with MapLibre from the maps API. Its address holds your token: share it as you would the token.</p>
      {tables.length > 0 && (
        <>
          <h2>Tables granted by name</h2>
          <table id="map-grants">
            <tbody>
              {tables.map((g, i) => (
                <tr key={i}>
                  <td>{g.connection_name}</td><td class="code">{g.source}</td>
                  <td><PreviewLink conn={g.connection_name} table={g.source}>Open the map</PreviewLink></td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {wide.length > 0 && (
        <p class="muted">This token also covers {wide.map((g, i) => <>{i ? ', ' : ''}<code>{g.source}</code> on {g.connection_name}</>)}: type any table there.</p>
      )}
    </Card>
  );
}

export function Preview() {
  if (!hasAPI(ws.claims, 'maps')) return <Card id="maps" title="Maps"><NeedAPI api="maps" /></Card>;
  return <Form />;
}
