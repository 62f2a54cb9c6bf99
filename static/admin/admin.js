// Meridian admin console: nodes, edge caches, cluster purges, the broker's
// subscriptions and dead letters (replay, drop), the effective config.
// Everything goes through the admin API with the administrator's bearer
// secret, kept in sessionStorage for this tab only.
'use strict';
(function () {
  const KEY = 'meridian.admin';
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(KEY) || '';
  let timer = null;
  let deadSub = '';

  // Without a token the console works as the signed-in user (session
  // cookie), which must be an administrator.
  async function api(method, path, body) {
    const init = {method, headers: {}};
    if (token) init.headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401) {
      signOut('The admin token was refused.');
      throw new Error('unauthorized');
    }
    const text = await res.text();
    const v = text ? JSON.parse(text) : {};
    if (!res.ok) throw new Error(v.error || res.status + ' ' + res.statusText);
    return v;
  }

  function cell(tr, text, cls) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  function duration(s) {
    if (s < 60) return Math.round(s) + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 86400) return (s / 3600).toFixed(1) + ' h';
    return (s / 86400).toFixed(1) + ' d';
  }

  function fill(tbody, rows) {
    tbody.replaceChildren(...rows);
  }

  async function refreshNodes() {
    const {nodes} = await api('GET', '/api/admin/nodes');
    const rows = nodes.map((n) => {
      const tr = document.createElement('tr');
      tr.dataset.name = n.name;
      tr.dataset.component = n.component;
      cell(tr, n.component);
      cell(tr, n.name);
      cell(tr, n.version || '');
      cell(tr, n.address || '');
      cell(tr, duration(n.uptime_seconds));
      const ready = n.alive ? (n.ready ? 'ready' : 'not ready') : 'stale';
      cell(tr, ready, 'state-' + ready.replace(' ', '-'));
      cell(tr, duration(n.seconds_since_heartbeat) + ' ago');
      return tr;
    });
    fill($('nodes').tBodies[0], rows);
    const ready = nodes.filter((n) => n.alive && n.ready).length;
    $('nodes-summary').textContent = ready + ' of ' + nodes.length + ' ready';
  }

  async function refreshCaches() {
    const {edges} = await api('GET', '/api/admin/cache');
    fill($('caches').tBodies[0], edges.map((e) => {
      const tr = document.createElement('tr');
      tr.dataset.name = e.name;
      const s = e.stats || {};
      cell(tr, e.name);
      cell(tr, e.hit_ratio == null ? '–' : (100 * e.hit_ratio).toFixed(1) + ' %');
      cell(tr, String(s.hits_total || 0));
      cell(tr, String(s.misses_total || 0));
      cell(tr, String(s.entries || 0));
      cell(tr, String(s.purges_total || 0));
      return tr;
    }));
  }

  async function refreshSubs() {
    const {subscriptions} = await api('GET', '/api/admin/broker/subscriptions');
    fill($('subs').tBodies[0], subscriptions.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.name = s.name;
      cell(tr, s.topic);
      cell(tr, s.name);
      cell(tr, String(s.backlog));
      cell(tr, s.backlog ? duration(s.oldest_unacked_seconds) : '–');
      cell(tr, String(s.dead_letters));
      const td = cell(tr, '');
      if (s.dead_letters > 0) {
        const b = document.createElement('button');
        b.className = 'small';
        b.textContent = 'Dead letters';
        b.addEventListener('click', () => showDead(s.name));
        td.appendChild(b);
      }
      return tr;
    }));
  }

  async function showDead(sub) {
    deadSub = sub;
    $('dead').hidden = false;
    $('dead-sub').textContent = sub;
    const {dead_letters: letters} = await api('GET', '/api/admin/broker/subscriptions/' + encodeURIComponent(sub) + '/dead-letters');
    fill($('dead-letters').tBodies[0], letters.map((l) => {
      const tr = document.createElement('tr');
      tr.dataset.id = l.id;
      cell(tr, l.id);
      cell(tr, new Date(l.published_at).toLocaleString());
      cell(tr, String(l.attempts));
      cell(tr, l.last_error);
      cell(tr, l.data_text || JSON.stringify(l.data));
      const td = cell(tr, '');
      for (const [label, method, suffix] of [['Replay', 'POST', '/replay'], ['Drop', 'DELETE', '']]) {
        const b = document.createElement('button');
        b.className = 'small';
        b.textContent = label;
        b.addEventListener('click', async () => {
          try {
            await api(method, '/api/admin/broker/subscriptions/' + encodeURIComponent(sub) + '/dead-letters/' + encodeURIComponent(l.id) + suffix);
            $('dead-msg').textContent = '';
            await showDead(sub);
            await refreshSubs();
            $('dead-msg').textContent = (label === 'Replay' ? 'Replayed ' : 'Dropped ') + l.id + '.';
          } catch (e) {
            $('dead-msg').textContent = e.message;
          }
        });
        td.appendChild(b);
      }
      return tr;
    }));
    if (letters.length === 0 && !$('dead-msg').textContent) $('dead-msg').textContent = 'No dead letters.';
  }

  // table builds a table of rows (arrays of strings or nodes) under heads.
  function table(heads, rows) {
    const t = document.createElement('table');
    const head = t.createTHead().insertRow();
    for (const h of heads) {
      const th = document.createElement('th');
      th.textContent = h;
      head.appendChild(th);
    }
    const body = t.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const v of row) {
        const td = tr.insertCell();
        if (v instanceof Node) td.appendChild(v);
        else td.textContent = v == null ? '' : String(v);
      }
    }
    return t;
  }

  const signInFirst = 'Sign in as an administrator (not with the admin token) to see this for your organization.';

  async function refreshUsers() {
    const box = $('users');
    if (token) {
      box.textContent = signInFirst;
      return;
    }
    const res = await fetch('/workspace-api/users');
    if (!res.ok) {
      box.textContent = 'Users are not available (' + res.status + ').';
      return;
    }
    const {users} = await res.json();
    box.replaceChildren(table(['Email', 'Name', 'Role', 'Since', 'State'],
      users.map((u) => [u.email, u.name, u.role, new Date(u.createdAt).toLocaleDateString(), u.disabledAt ? 'disabled' : 'active'])));
  }

  // The imports and batch SQL APIs take an API access token: a session
  // gets one for its organization's connections.
  let dataToken = null;
  async function dataAPI(method, path) {
    if (!dataToken || dataToken.expires < Date.now() + 60000) {
      const res = await fetch('/accounts-api/session/token', {method: 'POST'});
      if (!res.ok) throw new Error('no data token (' + res.status + ')');
      const v = await res.json();
      dataToken = {token: v.token, expires: Date.parse(v.expiresAt)};
    }
    const res = await fetch(path, {method, headers: {Authorization: 'Bearer ' + dataToken.token}});
    const v = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(v.error || String(res.status));
    return v;
  }

  async function refreshWork() {
    const box = $('work');
    if (token) {
      box.textContent = signInFirst;
      return;
    }
    let imports = [];
    let jobs = [];
    try {
      for (const st of ['pending', 'running']) {
        imports = imports.concat((await dataAPI('GET', '/api/v3/imports?status=' + st)).imports || []);
        jobs = jobs.concat((await dataAPI('GET', '/api/v3/sql/jobs?status=' + st)).jobs || []);
      }
    } catch (e) {
      box.textContent = 'Imports and jobs are not available: ' + e.message;
      return;
    }
    const cancel = (label, path) => {
      const b = document.createElement('button');
      b.className = 'small';
      b.textContent = 'Cancel';
      b.addEventListener('click', async () => {
        try {
          await dataAPI('POST', path);
          $('work-msg').textContent = 'Cancelled ' + label + '.';
        } catch (e) {
          $('work-msg').textContent = 'Cancel failed: ' + e.message;
        }
        refreshWork();
      });
      return b;
    };
    if (imports.length + jobs.length === 0) {
      box.textContent = 'Nothing is running.';
      return;
    }
    box.replaceChildren(table(['Kind', 'ID', 'Status', 'What', 'Since', ''], [
      ...imports.map((i) => ['import', i.id, i.status, i.destination, new Date(i.createdAt).toLocaleTimeString(),
        cancel('import ' + i.id, '/api/v3/imports/' + encodeURIComponent(i.id) + '/cancel')]),
      ...jobs.map((j) => ['SQL job', j.jobId, j.status, j.query, new Date(j.createdAt).toLocaleTimeString(),
        cancel('job ' + j.jobId, '/api/v3/sql/' + encodeURIComponent(j.connection) + '/job/' + encodeURIComponent(j.jobId) + '/cancel')]),
    ]));
  }

  async function refreshAudit() {
    const box = $('audit');
    if (token) {
      box.textContent = signInFirst;
      return;
    }
    const res = await fetch('/workspace-api/audit?limit=50');
    if (!res.ok) {
      box.textContent = 'The audit log is not available (' + res.status + ').';
      return;
    }
    const {events} = await res.json();
    box.replaceChildren(table(['When', 'Action', 'Target', 'Actor', 'Address'],
      events.map((e) => [new Date(e.at).toLocaleString(), e.action, e.target, e.actorId, e.ip])));
  }

  async function refresh() {
    try {
      await Promise.all([refreshNodes(), refreshCaches(), refreshSubs(), refreshAudit(), refreshUsers(), refreshWork()]);
    } catch (e) {
      if (e.message !== 'unauthorized') $('nodes-summary').textContent = 'refresh failed: ' + e.message;
    }
  }

  async function open() {
    $('signin').hidden = true;
    $('console').hidden = false;
    const who = $('who');
    const out = document.createElement('button');
    out.textContent = 'Sign out';
    out.addEventListener('click', () => signOut(''));
    who.replaceChildren(document.createTextNode(token ? 'administrator (token)' : 'administrator'), out);
    try {
      const {config} = await api('GET', '/api/admin/config');
      $('config').textContent = JSON.stringify(config, null, 2);
    } catch (e) {
      if (e.message === 'unauthorized') return;
      $('config').textContent = e.message;
    }
    await refresh();
    timer = setInterval(refresh, 2000);
  }

  function signOut(msg) {
    if (!token && !msg) {
      // A session: the accounts app signs out.
      location.assign('/acc/');
      return;
    }
    token = '';
    sessionStorage.removeItem(KEY);
    if (timer) clearInterval(timer);
    timer = null;
    $('console').hidden = true;
    $('signin').hidden = false;
    $('who').replaceChildren();
    $('signin-msg').textContent = msg;
  }

  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(KEY, token);
    open();
  });

  $('purge-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const tags = $('purge-tags').value.split(/\s+/).filter(Boolean);
    const urls = $('purge-urls').value.split(/\s+/).filter(Boolean);
    const prefix = $('purge-prefix').value.trim();
    if (!tags.length && !urls.length && !prefix) {
      $('purge-msg').textContent = 'Name tags, URLs or a prefix to purge.';
      return;
    }
    try {
      const v = await api('POST', '/api/admin/purge', {tags, urls, prefix, soft: $('purge-soft').checked});
      const what = [...(v.tags || []), ...(v.urls || []), ...(v.prefix ? [v.prefix + '*'] : [])];
      $('purge-msg').textContent = 'Purge of ' + what.join(' ') + ' published (message ' + v.message_id + ').';
    } catch (e) {
      $('purge-msg').textContent = 'Purge failed: ' + e.message;
    }
  });

  if (token) {
    open();
  } else {
    // Signed in as an administrator already? Then no token is needed.
    fetch('/api/admin/session').then((res) => res.json()).then((v) => {
      if (v.admin) open();
      else $('signin').hidden = false;
    }, () => { $('signin').hidden = false; });
  }
}());
