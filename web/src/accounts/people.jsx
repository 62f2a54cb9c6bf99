// people.jsx: an administrator's organization (/acc/users): the users and
// their roles, invites (mailed, or a link to pass on when no mail server
// is configured) and removing a user, whose tokens, imports, jobs and
// maps go to a colleague.
import {useEffect, useRef, useState} from 'preact/hooks';
import {call} from '../api.js';
import {formatTime} from '../format.js';
import {ErrorNote, Note, formValues} from '../ui.jsx';

const roles = ['admin', 'editor', 'viewer', 'guest'];

function inviteState(i) {
  if (i.usedAt) return 'accepted';
  if (i.revokedAt) return 'revoked';
  return new Date(i.expiresAt) < new Date() ? 'expired' : `open until ${formatTime(i.expiresAt)}`;
}

// UserRow is a user with their role and, for others than me, whom their
// things go to on removal.
function UserRow({x, me, receivers, act}) {
  const recv = useRef(null);
  const remove = () => {
    const to = recv.current.selectedOptions[0]?.textContent;
    if (!confirm(`Remove ${x.email}? Their tokens, imports, jobs and maps go to ${to}.`)) return;
    act(() => call(`/workspace-api/users/${x.id}?receiver=${encodeURIComponent(recv.current.value)}`, {method: 'DELETE'}), `${x.email} removed.`);
  };
  const setRole = (e) => {
    const role = e.currentTarget.value;
    act(() => call('/workspace-api/users/' + x.id, {method: 'PATCH', body: {role}}), `${x.email} is now ${role}.`);
  };
  return (
    <tr data-email={x.email}>
      <td>{x.email}</td>
      <td>{x.name}</td>
      <td>
        <select aria-label={`Role of ${x.email}`} value={x.role} onChange={setRole}>
          {roles.map((r) => <option key={r} value={r}>{r}</option>)}
        </select>
      </td>
      <td>
        {x.id === me.user.id ? 'you' : (
          <>
            <select aria-label={`Who receives ${x.email}'s tokens and maps`} ref={recv}>
              {receivers.filter((r) => r.id !== x.id).map((r) => <option key={r.id} value={r.id}>{r.email}</option>)}
            </select>
            {' '}<button type="button" class="small" onClick={remove}>Remove</button>
          </>
        )}
      </td>
    </tr>
  );
}

export function People({who}) {
  const [data, setData] = useState(null);
  const [msg, setMsg] = useState(null);
  const load = async () => {
    try {
      const [{users}, {invites}] = await Promise.all([call('/workspace-api/users'), call('/workspace-api/invites')]);
      setData({users, invites});
    } catch (err) {
      setMsg(<ErrorNote error={err} />);
    }
  };
  useEffect(() => { load(); }, []);
  // act runs a change, says how it went and reloads the lists.
  const act = async (fn, done) => {
    try {
      await fn();
      if (done) setMsg(<Note kind="ok">{done}</Note>);
    } catch (err) {
      setMsg(<ErrorNote error={err} />);
    }
    load();
  };
  const invite = (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const {email, role} = formValues(e);
    act(async () => {
      const i = await call('/workspace-api/invites', {method: 'POST', body: {email, role}});
      setMsg(i.mailed ? <Note kind="ok">Invite mailed to {i.email}.</Note>
        : <Note kind="ok">No mail server is configured: send {i.email} this link yourself: <code id="invite-link">{i.link}</code></Note>);
      form.reset();
    });
  };
  const receivers = data ? data.users.filter((x) => x.role === 'admin' || x.role === 'editor') : [];
  return (
    <section class="card wide">
      <h1>People</h1>
      <div id="people-message">{msg}</div>
      <form id="invite-form" onSubmit={invite} class="inline">
        <label>Invite by email<input type="email" name="email" id="invite-email" required /></label>
        <label>Role
          <select name="role" id="invite-role">{roles.map((r) => <option key={r} value={r} defaultSelected={r === 'viewer'}>{r}</option>)}</select>
        </label>
        <button type="submit" class="primary" id="invite-submit">Invite</button>
      </form>
      {data && (
        <div id="people">
          <table id="users">
            <thead><tr><th>Email</th><th>Name</th><th>Role</th><th>Remove</th></tr></thead>
            <tbody>{data.users.map((x) => <UserRow key={x.id} x={x} me={who} receivers={receivers} act={act} />)}</tbody>
          </table>
          <h2>Invites</h2>
          <table id="invites">
            <thead><tr><th>Email</th><th>Role</th><th>State</th><th /></tr></thead>
            <tbody>
              {data.invites.map((i) => (
                <tr key={i.id}>
                  <td>{i.email}</td><td>{i.role}</td><td>{inviteState(i)}</td>
                  <td>{!i.usedAt && !i.revokedAt && (
                    <button type="button" class="small" onClick={() => act(() => call('/workspace-api/invites/' + i.id, {method: 'DELETE'}))}>Revoke</button>
                  )}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
