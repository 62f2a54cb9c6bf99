// orgs.jsx: the console's organizations (platform administrators): each
// with its members, admins, pending invites and Location Data Services
// use against its quotas; a new organization with an invite for its first
// admin; an organization's monthly quota of a service set or returned to
// the default.
import {useState} from 'preact/hooks';
import {admin} from './call.js';
import {Table} from './table.jsx';

const SERVICES = ['geocoding', 'routing', 'isolines'];

const usage = (lds) => (lds || []).map((u) => `${u.service} ${u.used}/${u.monthlyQuota}${u.override ? '*' : ''}`).join(' · ');

export function Orgs({orgs, refresh}) {
  const [msg, setMsg] = useState('');
  const [link, setLink] = useState('');
  const [quotaMsg, setQuotaMsg] = useState('');
  const create = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const f = form.elements;
    setLink('');
    try {
      const r = await admin('/api/admin/orgs', {method: 'POST', body: {name: f['org-name'].value, adminEmail: f['org-admin'].value}});
      const who = f['org-admin'].value;
      setMsg(`Created ${r.organization.name}.` + (r.invite ? (r.invite.mailed ? ` The invite was mailed to ${who}.` : ` Send ${who} this invite link:`) : '') +
        (r.inviteError ? ` No invite: ${r.inviteError}` : ''));
      if (r.invite && !r.invite.mailed) setLink(r.invite.link);
      form.reset();
      refresh();
    } catch (err) {
      setMsg('Not created: ' + err.message);
    }
  };
  const setQuota = async (e, reset) => {
    e.preventDefault();
    // The form's own submit, or its Default button.
    const f = (e.currentTarget.form || e.currentTarget).elements;
    const org = f['quota-org'].value;
    const service = f['quota-service'].value;
    const path = `/api/admin/orgs/${encodeURIComponent(org)}/quotas/${encodeURIComponent(service)}`;
    try {
      if (reset) await admin(path, {method: 'DELETE'});
      else await admin(path, {method: 'PUT', body: {monthlyQuota: Number(f['quota-value'].value)}});
      setQuotaMsg(reset ? `The ${service} quota is the default again.` : `The ${service} quota is ${f['quota-value'].value} a month.`);
      refresh();
    } catch (err) {
      setQuotaMsg('Not changed: ' + err.message);
    }
  };
  if (typeof orgs === 'string') return <section class="card"><h2>Organizations</h2><p class="muted">{orgs}</p></section>;
  return (
    <section class="card">
      <h2>Organizations</h2>
      <Table id="orgs" heads={['Name', 'Users', 'Admins', 'Pending invites', 'Location Data Services this month (* own quota)']}
        rows={(orgs || []).map((o) => [o.name, o.users, o.admins.join(', '), o.pendingInvites, usage(o.lds)])} />
      <form class="row" id="org-form" onSubmit={create}>
        <label>New organization <input id="org-name" name="org-name" required maxLength={100} /></label>
        <label>Its first admin <input id="org-admin" name="org-admin" type="email" placeholder="email (an invite)" /></label>
        <button class="primary" type="submit">Create</button>
      </form>
      <p class="muted" id="org-msg">{msg}</p>
      {link && <input id="org-link" class="code" style={{width: "100%"}} readOnly value={link} onFocus={(e) => e.currentTarget.select()} />}
      <form class="row" id="quota-form" onSubmit={(e) => setQuota(e, false)}>
        <label>Quota of <select id="quota-org" name="quota-org">{(orgs || []).map((o) => <option key={o.id} value={o.id}>{o.name}</option>)}</select></label>
        <label>for <select id="quota-service" name="quota-service">{SERVICES.map((s) => <option key={s} value={s}>{s}</option>)}</select></label>
        <label>a month <input id="quota-value" name="quota-value" type="number" min="0" required /></label>
        <button type="submit">Set</button>
        <button type="button" onClick={(e) => setQuota(e, true)}>Default</button>
      </form>
      <p class="muted" id="quota-msg">{quotaMsg}</p>
    </section>
  );
}
