// broker.jsx: the broker's subscriptions and their backlogs, and a
// subscription's dead letters, which may be replayed or dropped.
import {useState} from 'preact/hooks';
import {duration} from '../format.js';
import {admin} from './call.js';

const deadPath = (sub) => `/api/admin/broker/subscriptions/${encodeURIComponent(sub)}/dead-letters`;

function DeadLetters({sub, letters, msg, act}) {
  return (
    <div id="dead">
      <h2>Dead letters of <span id="dead-sub">{sub}</span></h2>
      <table id="dead-letters">
        <thead><tr><th>ID</th><th>Published</th><th>Attempts</th><th>Last error</th><th>Data</th><th /></tr></thead>
        <tbody>
          {letters.map((l) => (
            <tr key={l.id} data-id={l.id}>
              <td>{l.id}</td>
              <td>{new Date(l.published_at).toLocaleString()}</td>
              <td>{l.attempts}</td>
              <td>{l.last_error}</td>
              <td>{l.data_text || JSON.stringify(l.data)}</td>
              <td>
                <button type="button" class="small" onClick={() => act(l.id, 'Replayed', 'POST', '/replay')}>Replay</button>
                <button type="button" class="small" onClick={() => act(l.id, 'Dropped', 'DELETE', '')}>Drop</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p id="dead-msg" class="muted">{msg || (letters.length === 0 ? 'No dead letters.' : '')}</p>
    </div>
  );
}

export function Broker({subscriptions, refresh}) {
  const [dead, setDead] = useState(null); // {sub, letters, msg}
  const show = async (sub, msg = '') => {
    const {dead_letters: letters} = await admin(deadPath(sub));
    setDead({sub, letters, msg});
  };
  const act = async (id, done, method, suffix) => {
    const sub = dead.sub;
    try {
      await admin(`${deadPath(sub)}/${encodeURIComponent(id)}${suffix}`, {method});
      await show(sub, `${done} ${id}.`);
      refresh();
    } catch (err) {
      setDead((d) => ({...d, msg: err.message}));
    }
  };
  return (
    <section class="card">
      <h2>Broker</h2>
      <table id="subs">
        <thead><tr><th>Topic</th><th>Subscription</th><th>Backlog</th><th>Oldest unacked</th><th>Dead letters</th><th /></tr></thead>
        <tbody>
          {subscriptions.map((s) => (
            <tr key={s.name} data-name={s.name}>
              <td>{s.topic}</td><td>{s.name}</td><td>{s.backlog}</td>
              <td>{s.backlog ? duration(s.oldest_unacked_seconds) : '–'}</td>
              <td>{s.dead_letters}</td>
              <td>{s.dead_letters > 0 && <button type="button" class="small" onClick={() => show(s.name).catch(() => {})}>Dead letters</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {dead && <DeadLetters {...dead} act={act} />}
    </section>
  );
}
