// Meridian workspace (/): imports (list, upload a file or import a URL,
// cancel), SQL (run a read-only query, submit a batch job, map a query),
// batch SQL jobs (list, cancel) and map previews of tables, all through
// the public APIs with the signed-in token (common/meridian.js). Without
// a token it exchanges the browser session for one, and without a session
// it sends the browser to the accounts app's sign-in.
//
// Views: / imports, /sql, /jobs, /preview (a token's one-layer map
// preview), /tokens, /connections; any other path shows "not found".
// Maps (/maps, /map/{id}) and the Data Explorer (/data) are the
// Builder's (static/builder, built from web/).
'use strict';

(async () => {
  const M = window.Meridian;
  const {h, note} = M;
  const s = M.session() || await M.sessionToken();
  if (!s) {
    location.replace(M.signInURL());
    return;
  }
  const {token, claims} = s;
  const conns = M.connections(claims);
  const main = document.getElementById('main');
  const active = (st) => st === 'pending' || st === 'running';

  // --- shared pieces ---

  // failure shows an error; a refused token gets a way to sign in again.
  function failure(err) {
    if (err instanceof M.APIError && err.status === 401) {
      return note('error', `The server refused the token: ${err.message}. `, h('a', {href: M.signInURL()}, 'Sign in again'));
    }
    return note('error', err.message || String(err));
  }

  function needAPI(api) {
    return note('warn', `This token does not allow the ${api} API (it allows ${claims.allowed_apis.join(', ') || 'none'}).`);
  }

  const card = (id, title, ...children) => h('section', {class: 'card', id}, h('h2', null, ...[].concat(title)), ...children);

  const connSelect = (id) => h('select', {id, name: 'connection', required: true}, conns.map((c) => h('option', {value: c}, c)));

  // previewURL is the tiles engine's MapLibre page of a source: a table
  // (name) or a query (q). The token travels in the URL: the page's
  // address bar is the only way to give it one.
  function previewURL(conn, source) {
    return `/api/v3/maps/${encodeURIComponent(conn)}/preview?` + new URLSearchParams({...source, access_token: token});
  }

  const previewLink = (conn, table, text = 'Map') =>
    h('a', {href: previewURL(conn, {name: table}), target: '_blank', rel: 'noopener noreferrer', class: 'preview'}, text);

  const routeLink = (path, text) => h('a', {href: path, 'data-route': ''}, text);

  const badge = (status) => h('span', {class: `badge ${status}`}, status);

  // poller calls load(signal) now, and again every 2 s while load reports
  // unfinished work (load shows its own errors); stop() ends it.
  function poller(load) {
    let timer = 0;
    let stopped = false;
    const ctrl = new AbortController();
    const run = async () => {
      clearTimeout(timer);
      if (stopped) return;
      const again = await load(ctrl.signal).catch(() => false);
      if (again && !stopped) timer = setTimeout(run, 2000);
    };
    return {run, stop: () => {
      stopped = true;
      clearTimeout(timer);
      ctrl.abort();
    }};
  }

  // --- imports ---

  // tableName turns a file name into a table name the importer accepts.
  function tableName(filename) {
    let n = filename.replace(/\.[^.]*$/, '').toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 60);
    if (!/^[a-z_]/.test(n)) n = 't_' + n;
    return n === 't_' ? '' : n;
  }

  function newImportCard(onCreated) {
    const conn = connSelect('import-connection');
    const dest = h('input', {type: 'text', id: 'import-destination', name: 'destination', required: true, placeholder: 'schema.table',
      pattern: '([A-Za-z_][A-Za-z0-9_]{0,62}\\.)?[A-Za-z_][A-Za-z0-9_]{0,62}', title: 'table or schema.table: letters, digits and _'});
    const file = h('input', {type: 'file', id: 'import-file', name: 'file'});
    const url = h('input', {type: 'url', id: 'import-url', name: 'url', placeholder: 'https://…/data.geojson'});
    const ifExists = h('select', {id: 'import-if-exists', name: 'if_exists'},
      h('option', {value: 'fail'}, 'fail'), h('option', {value: 'replace'}, 'replace it'), h('option', {value: 'append'}, 'append rows'));
    const submit = h('button', {type: 'submit', class: 'primary', id: 'import-submit'}, 'Import');
    const progress = h('progress', {max: 1, value: 0, hidden: true});
    const msg = h('div', {id: 'import-message'});
    file.addEventListener('change', () => {
      if (file.files[0] && !dest.value) dest.value = tableName(file.files[0].name);
    });
    const form = h('form', {class: 'row', id: 'import-form', onsubmit: async (e) => {
      e.preventDefault();
      msg.replaceChildren();
      const f = file.files[0];
      const u = url.value.trim();
      if (!f === !u) {
        msg.append(note('error', 'Choose a file or give a URL (one of the two).'));
        return;
      }
      submit.disabled = true;
      try {
        let imp;
        const fields = {connection: conn.value, destination: dest.value.trim(), if_exists: ifExists.value};
        if (f) {
          // Fields before the file: the server checks the grant before storing anything.
          const body = new FormData();
          for (const [k, v] of Object.entries(fields)) body.append(k, v);
          body.append('file', f);
          progress.hidden = false;
          progress.value = 0;
          imp = await M.upload(token, '/api/v3/imports', body, (sent, total) => {
            if (total) {
              progress.max = total;
              progress.value = sent;
            }
          });
        } else {
          imp = await M.api(token, '/api/v3/imports', {method: 'POST', body: {...fields, url: u}});
        }
        form.reset();
        msg.append(note('ok', `Import into ${imp.destination} queued.`));
        onCreated();
      } catch (err) {
        msg.append(failure(err));
      } finally {
        submit.disabled = false;
        progress.hidden = true;
      }
    }},
    h('label', null, 'Connection', conn),
    h('label', null, 'Table', dest),
    h('label', null, 'File', file),
    h('label', {class: 'grow'}, 'or URL', url),
    h('label', null, 'If the table exists', ifExists),
    submit, progress);
    return card('new-import', 'New import', form,
      h('p', {class: 'muted'}, 'GeoJSON, newline-delimited GeoJSON, CSV, Shapefile (zipped), GeoPackage, KML/KMZ, FlatGeobuf, GPX, TopoJSON or GML.'),
      msg);
  }

  function importStatus(i) {
    const p = i.progress || {};
    const cells = [badge(i.status)];
    if (i.status === 'running') {
      const total = p.bytesTotal;
      if (total) cells.push(' ', h('progress', {max: total, value: Math.min(p.bytesDone, total)}));
      cells.push(h('div', {class: 'sub'}, [p.phase, total ? `${M.formatBytes(p.bytesDone)} of ${M.formatBytes(total)}` : p.bytesDone ? M.formatBytes(p.bytesDone) : '']
        .filter(Boolean).join(' · ')));
    }
    if (i.retryReason) cells.push(h('div', {class: 'sub'}, `retrying after: ${i.retryReason}`));
    if (i.error) cells.push(h('div', {class: 'err'}, i.error));
    return cells;
  }

  function importsTable(imports, refresh) {
    if (imports.length === 0) {
      return h('p', {class: 'empty', id: 'imports-empty'}, 'No imports yet: upload a file or give a URL above.');
    }
    const cancel = async (i, btn) => {
      btn.disabled = true;
      try {
        await M.api(token, `/api/v3/imports/${encodeURIComponent(i.id)}/cancel`, {method: 'POST'});
      } catch (err) {
        btn.replaceWith(failure(err));
        return;
      }
      refresh();
    };
    return h('div', {class: 'scroll'}, h('table', {id: 'imports-table'},
      h('thead', null, h('tr', null, ['Table', 'Source', 'Status', 'Rows', 'Created', ''].map((t) => h('th', {class: t === 'Rows' ? 'num' : null}, t)))),
      h('tbody', null, imports.map((i) => {
        const rows = i.result && Number.isFinite(i.result.rows) ? i.result.rows : (i.progress || {}).rows;
        let action = null;
        if (active(i.status)) {
          const btn = h('button', {type: 'button', class: 'small'}, 'Cancel');
          btn.addEventListener('click', () => cancel(i, btn));
          action = btn;
        } else if (i.status === 'success' && M.hasAPI(claims, 'maps')) {
          action = previewLink(i.connection, i.destination);
        }
        return h('tr', {'data-id': i.id, 'data-status': i.status},
          h('td', null, h('div', {class: 'dest'}, i.destination), h('div', {class: 'sub'}, i.connection)),
          h('td', {class: 'code'}, i.filename || i.url || ''),
          h('td', null, importStatus(i)),
          h('td', {class: 'num'}, M.formatCount(rows)),
          h('td', {title: i.createdAt}, M.formatTime(i.createdAt)),
          h('td', null, action));
      }))));
  }

  function importsView(root) {
    if (!M.hasAPI(claims, 'imports')) {
      root.append(card('imports', 'Imports', needAPI('imports')));
      return null;
    }
    const list = h('div', null, h('p', {class: 'empty'}, 'Loading…'));
    const status = h('div');
    const p = poller(async (signal) => {
      try {
        const {imports} = await M.api(token, '/api/v3/imports', {params: {limit: 50}, signal});
        list.replaceChildren(importsTable(imports, p.run));
        status.replaceChildren();
        return imports.some((i) => active(i.status));
      } catch (err) {
        if (err.name !== 'AbortError') status.replaceChildren(failure(err));
        return false;
      }
    });
    const refresh = h('button', {type: 'button', class: 'small', onclick: p.run}, 'Refresh');
    root.append(newImportCard(p.run), card('imports', ['Imports', h('span', {class: 'spacer'}), refresh], status, list));
    p.run();
    return p.stop;
  }

  // --- SQL ---

  const lastSQL = {conn: conns[0], text: ''};

  function cellText(v) {
    if (v === null || v === undefined) return null;
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  const MAX_SHOWN = 500;

  function resultTable(res, ms) {
    const rows = res.rows || [];
    const cols = (res.schema || []).map((f) => f.name);
    if (cols.length === 0 && rows.length > 0) cols.push(...Object.keys(rows[0]));
    const types = Object.fromEntries((res.schema || []).map((f) => [f.name, f.type]));
    const shown = rows.slice(0, MAX_SHOWN);
    return h('div', null,
      h('p', {class: 'muted', id: 'sql-meta'}, `${M.formatCount(rows.length)} ${rows.length === 1 ? 'row' : 'rows'} in ${Math.round(ms)} ms`,
        rows.length > MAX_SHOWN ? ` (showing the first ${MAX_SHOWN})` : ''),
      cols.length === 0 ? null : h('div', {class: 'scroll'}, h('table', {class: 'results', id: 'sql-table'},
        h('thead', null, h('tr', null, cols.map((c) => h('th', {title: types[c] || null}, c)))),
        h('tbody', null, shown.map((r) => h('tr', null, cols.map((c) => {
          const t = cellText(r[c]);
          return t === null ? h('td', {class: 'null'}, 'null') : h('td', {title: t.length > 40 ? t.slice(0, 2000) : null}, t);
        })))))));
  }

  function sqlView(root) {
    if (!M.hasAPI(claims, 'sql')) {
      root.append(card('sql', 'SQL', needAPI('sql')));
      return null;
    }
    const conn = connSelect('sql-connection');
    conn.value = lastSQL.conn;
    const q = h('textarea', {id: 'sql-query', rows: 6, class: 'code', spellcheck: 'false', required: true,
      placeholder: 'SELECT name, geom FROM public.countries LIMIT 10'});
    q.value = lastSQL.text;
    const out = h('div', {id: 'sql-result', class: 'result'});
    const run = h('button', {type: 'submit', class: 'primary', id: 'sql-run'}, 'Run query');
    const job = h('button', {type: 'button', id: 'sql-job'}, 'Run as batch job');
    const mapBtn = M.hasAPI(claims, 'maps') ? h('button', {type: 'button', id: 'sql-map'}, 'Show on a map') : null;
    const canJob = () => claims.grants.some((g) => g.connection_name === conn.value && g.source.trim() === '*');
    const updateJob = () => {
      job.disabled = !canJob();
      job.title = job.disabled ? `Batch jobs need a * grant on ${conn.value}` : '';
    };
    conn.addEventListener('change', updateJob);
    updateJob();
    const remember = () => Object.assign(lastSQL, {conn: conn.value, text: q.value});
    q.addEventListener('input', remember);
    conn.addEventListener('change', remember);

    const onsubmit = async (e) => {
      e.preventDefault();
      const sql = q.value.trim();
      if (!sql) return;
      run.disabled = true;
      out.replaceChildren(h('p', {class: 'empty'}, 'Running…'));
      const path = `/api/v3/sql/${encodeURIComponent(conn.value)}/query`;
      const t0 = performance.now();
      try {
        // CARTO clients POST past about 7000 characters of URL; so does this.
        const res = sql.length > 6000 ? await M.api(token, path, {method: 'POST', body: {q: sql}}) : await M.api(token, path, {params: {q: sql}});
        out.replaceChildren(resultTable(res, performance.now() - t0));
      } catch (err) {
        out.replaceChildren(failure(err));
      } finally {
        run.disabled = false;
      }
    };
    job.addEventListener('click', async () => {
      const sql = q.value.trim();
      if (!sql) return;
      job.disabled = true;
      try {
        const j = await M.api(token, `/api/v3/sql/${encodeURIComponent(conn.value)}/job`, {method: 'POST', body: {query: sql}});
        out.replaceChildren(note('ok', `Batch job ${j.jobId} queued (${j.status}). `, routeLink('/jobs', 'See jobs')));
      } catch (err) {
        out.replaceChildren(failure(err));
      } finally {
        updateJob();
      }
    });
    if (mapBtn) {
      mapBtn.addEventListener('click', () => {
        const sql = q.value.trim();
        if (sql) window.open(previewURL(conn.value, {q: sql}), '_blank', 'noopener,noreferrer');
      });
    }
    root.append(card('sql', 'SQL',
      h('form', {id: 'sql-form', onsubmit},
        h('div', {class: 'actions'}, h('label', null, 'Connection', conn)),
        h('label', {class: 'field'}, 'Query', q),
        h('div', {class: 'actions'}, run, job, mapBtn, h('span', {class: 'grow'}),
          h('span', {class: 'muted'}, 'Queries run read-only; batch jobs may write.'))),
      out));
    return null;
  }

  // --- batch SQL jobs ---

  function jobResult(j) {
    if (j.error) return h('div', {class: 'err'}, j.error);
    if (j.retryReason) return h('div', {class: 'sub'}, `retrying after: ${j.retryReason}`);
    const r = j.result;
    if (!r) return null;
    return [r.command, r.wrote ? ' · wrote' : '', Number.isFinite(r.elapsedMs) ? ` · ${r.elapsedMs} ms` : ''].join('');
  }

  function jobsTable(jobs, refresh) {
    if (jobs.length === 0) {
      return h('p', {class: 'empty', id: 'jobs-empty'}, 'No batch SQL jobs yet: submit one from ', routeLink('/sql', 'SQL'), '.');
    }
    return h('div', {class: 'scroll'}, h('table', {id: 'jobs-table'},
      h('thead', null, h('tr', null, ['Created', 'Connection', 'Query', 'Status', 'Result', ''].map((t) => h('th', null, t)))),
      h('tbody', null, jobs.map((j) => {
        let action = null;
        if (active(j.status)) {
          action = h('button', {type: 'button', class: 'small'}, 'Cancel');
          action.addEventListener('click', async () => {
            action.disabled = true;
            try {
              await M.api(token, `/api/v3/sql/${encodeURIComponent(j.connection)}/job/${encodeURIComponent(j.jobId)}/cancel`, {method: 'POST'});
              refresh();
            } catch (err) {
              action.replaceWith(failure(err));
            }
          });
        }
        const query = j.query.length > 300 ? j.query.slice(0, 300) + '…' : j.query;
        return h('tr', {'data-id': j.jobId, 'data-status': j.status},
          h('td', {title: j.createdAt}, M.formatTime(j.createdAt)),
          h('td', null, j.connection),
          h('td', {class: 'code', title: j.query.length > 300 ? j.query.slice(0, 2000) : null}, query),
          h('td', null, badge(j.status)),
          h('td', null, jobResult(j)),
          h('td', null, action));
      }))));
  }

  function jobsView(root) {
    if (!M.hasAPI(claims, 'sql')) {
      root.append(card('jobs', 'Batch SQL jobs', needAPI('sql')));
      return null;
    }
    const list = h('div', null, h('p', {class: 'empty'}, 'Loading…'));
    const status = h('div');
    const p = poller(async (signal) => {
      try {
        const {jobs} = await M.api(token, '/api/v3/sql/jobs', {params: {limit: 50}, signal});
        list.replaceChildren(jobsTable(jobs, p.run));
        status.replaceChildren();
        return jobs.some((j) => active(j.status));
      } catch (err) {
        if (err.name !== 'AbortError') status.replaceChildren(failure(err));
        return false;
      }
    });
    const refresh = h('button', {type: 'button', class: 'small', onclick: p.run}, 'Refresh');
    root.append(card('jobs', ['Batch SQL jobs', h('span', {class: 'spacer'}), refresh],
      h('p', {class: 'muted'}, 'The 50 most recent jobs on connections this token has a * grant on.'), status, list));
    p.run();
    return p.stop;
  }

  // --- maps ---

  function mapsView(root) {
    if (!M.hasAPI(claims, 'maps')) {
      root.append(card('maps', 'Maps', needAPI('maps')));
      return null;
    }
    const conn = connSelect('map-connection');
    const tables = claims.grants.filter((g) => M.sourceKind(g.source) === 'table');
    const list = h('datalist', {id: 'map-tables'});
    const fillList = () => list.replaceChildren(...tables.filter((g) => g.connection_name === conn.value).map((g) => h('option', {value: g.source})));
    conn.addEventListener('change', fillList);
    fillList();
    const table = h('input', {type: 'text', id: 'map-table', required: true, list: 'map-tables', placeholder: 'schema.table'});
    const form = h('form', {class: 'row', id: 'map-form', onsubmit: (e) => {
      e.preventDefault();
      window.open(previewURL(conn.value, {name: table.value.trim()}), '_blank', 'noopener,noreferrer');
    }},
    h('label', null, 'Connection', conn),
    h('label', {class: 'grow'}, 'Table', table, list),
    h('button', {type: 'submit', class: 'primary'}, 'Open the map'));
    const wide = claims.grants.filter((g) => M.sourceKind(g.source) !== 'table' && M.sourceKind(g.source) !== 'query');
    root.append(card('maps', 'Map preview', form,
      h('p', {class: 'muted'}, 'The preview opens in a new tab, drawn with MapLibre from the maps API. Its address holds your token: share it as you would the token.'),
      tables.length === 0 ? null : [h('h2', null, 'Tables granted by name'),
        h('table', {id: 'map-grants'}, h('tbody', null, tables.map((g) => h('tr', null,
          h('td', null, g.connection_name), h('td', {class: 'code'}, g.source), h('td', null, previewLink(g.connection_name, g.source, 'Open the map'))))))],
      wide.length === 0 ? null : h('p', {class: 'muted'}, 'This token also covers ',
        wide.map((g, i) => [i ? ', ' : '', h('code', null, g.source), ` on ${g.connection_name}`]), ': type any table there.')));
    return null;
  }

  // --- tokens and connections: the management APIs, with the session ---

  const needSession = (what) => note('warn', `Managing ${what} needs a signed-in account (you are using a pasted token). `,
    h('a', {href: '/acc/'}, 'Sign in with your account'));

  function tokensView(root) {
    const list = h('div', null, h('p', {class: 'empty'}, 'Loading…'));
    const msg = h('div', {id: 'tokens-message'});
    const box = card('tokens', 'API access tokens', msg, list);
    root.append(box);
    async function load() {
      try {
        const {tokens} = await M.account('/api/v3/tokens');
        list.replaceChildren(tokens.length === 0 ? h('p', {class: 'empty'}, 'No tokens yet.') : h('table', {id: 'tokens-table'},
          h('thead', null, h('tr', null, ['Name', 'Grants', 'APIs', 'Expires', 'Token', ''].map((x) => h('th', null, x)))),
          h('tbody', null, tokens.map((t) => h('tr', {'data-id': t.id},
            h('td', null, t.name || '—'),
            h('td', {class: 'code'}, t.grants.map((g) => `${g.source} on ${g.connection_name}`).join(', ')),
            h('td', null, t.allowed_apis.join(', ')),
            h('td', null, t.expiration_date ? M.formatTime(t.expiration_date) : 'never'),
            h('td', null, h('button', {type: 'button', class: 'small', onclick: () => navigator.clipboard?.writeText(t.token)}, 'Copy')),
            h('td', null, h('button', {type: 'button', class: 'small', onclick: async () => {
              if (!confirm(`Revoke ${t.name || t.id}? Apps using it stop working within a second.`)) return;
              await M.account('/api/v3/tokens/' + t.id, {method: 'DELETE'});
              load();
            }}, 'Revoke')))))));
      } catch (err) {
        list.replaceChildren(err.status === 401 ? needSession('tokens') : failure(err));
      }
    }
    // The grant picker: a connection, then a table or schema of it (the
    // catalog), everything (*), or a SQL query.
    const connSel = h('select', {id: 'token-conn'});
    const srcSel = h('select', {id: 'token-source'});
    const query = h('input', {type: 'text', id: 'token-query', placeholder: 'or a SQL query', class: 'grow'});
    const grants = [];
    const grantList = h('ul', {id: 'token-grants'});
    const showGrants = () => grantList.replaceChildren(...grants.map((g, i) => h('li', null, h('code', null, g.source), ' on ', g.connection_name, ' ',
      h('button', {type: 'button', class: 'small', onclick: () => { grants.splice(i, 1); showGrants(); }}, '×'))));
    async function loadSources() {
      srcSel.replaceChildren(h('option', {value: '*'}, '* (everything)'));
      if (!connSel.value) return;
      try {
        const {schemas} = await M.account(`/workspace-api/connections/${encodeURIComponent(connSel.value)}/schemas`);
        for (const s of schemas) {
          srcSel.append(h('option', {value: `${s.name}.*`}, `${s.name}.* (every table)`));
          const {tables} = await M.account(`/workspace-api/connections/${encodeURIComponent(connSel.value)}/schemas/${encodeURIComponent(s.name)}/tables`);
          for (const t of tables) srcSel.append(h('option', {value: t.name}, t.name));
        }
      } catch (err) {
        msg.replaceChildren(failure(err));
      }
    }
    connSel.addEventListener('change', loadSources);
    M.account('/api/v3/connections').then(({connections}) => {
      connSel.replaceChildren(...connections.map((c) => h('option', {value: c.name}, c.name)));
      loadSources();
    }, () => {});
    const apis = ['maps', 'sql', 'imports', 'lds'].map((a) => h('label', {class: 'check'}, h('input', {type: 'checkbox', name: 'api', value: a, checked: a === 'maps' || a === 'sql' ? true : undefined}), a));
    const create = async (e) => {
      e.preventDefault();
      const f = e.target;
      const body = {name: f.name.value, grants: grants.length ? grants : [], allowed_apis: [...f.querySelectorAll('input[name=api]:checked')].map((x) => x.value),
        referers: f.referers.value.split(/[\s,]+/).filter(Boolean)};
      if (f.expires.value) body.expiration_date = new Date(f.expires.value).toISOString().replace(/\.\d+Z$/, 'Z');
      try {
        const t = await M.account('/api/v3/tokens', {method: 'POST', body});
        msg.replaceChildren(note('ok', 'Token created. Copy it now or later from the list: ', h('code', {id: 'new-token', class: 'wrap'}, t.token)));
        grants.length = 0;
        showGrants();
        f.reset();
        for (const x of f.querySelectorAll('input[name=api]')) x.checked = x.value === 'maps' || x.value === 'sql';
        load();
      } catch (err) {
        msg.replaceChildren(failure(err));
      }
    };
    box.append(h('h3', null, 'New token'), h('form', {id: 'token-form', onsubmit: create},
      h('label', null, 'Name', h('input', {type: 'text', name: 'name', maxlength: 200})),
      h('div', {class: 'row'}, h('label', null, 'Connection', connSel), h('label', null, 'Source', srcSel), query,
        h('button', {type: 'button', id: 'token-add-grant', onclick: () => {
          if (!connSel.value) return;
          grants.push({connection_name: connSel.value, source: query.value.trim() || srcSel.value});
          query.value = '';
          showGrants();
        }}, 'Add grant')),
      grantList,
      h('div', {class: 'row'}, ...apis),
      h('label', null, 'Allowed origins (optional, space-separated)', h('input', {type: 'text', name: 'referers', placeholder: 'https://app.example.com'})),
      h('label', null, 'Expires (optional)', h('input', {type: 'datetime-local', name: 'expires'})),
      h('div', {class: 'actions'}, h('span', {class: 'grow'}), h('button', {type: 'submit', class: 'primary', id: 'token-create'}, 'Create token'))));
    load();
    return null;
  }

  function connectionsView(root) {
    const list = h('div', null, h('p', {class: 'empty'}, 'Loading…'));
    const msg = h('div', {id: 'connections-message'});
    const box = card('connections', 'Connections', msg, list);
    root.append(box);
    async function load() {
      try {
        const {connections} = await M.account('/api/v3/connections');
        list.replaceChildren(h('table', {id: 'connections-table'},
          h('thead', null, h('tr', null, ['Name', 'Host', 'Database', 'Privacy', ''].map((x) => h('th', null, x)))),
          h('tbody', null, connections.map((c) => {
            const result = h('span', {class: 'muted'});
            return h('tr', {'data-name': c.name},
              h('td', null, c.name), h('td', null, c.host || ''), h('td', null, c.database || ''), h('td', null, c.privacy),
              h('td', null,
                h('button', {type: 'button', class: 'small', onclick: async () => {
                  result.textContent = 'testing…';
                  const r = await M.account(`/api/v3/connections/${c.id}/test`, {method: 'POST'}).catch((err) => ({ok: false, error: err.message}));
                  result.textContent = r.ok ? `ok (${r.latency_ms} ms${r.postgis ? ', PostGIS ' + r.postgis : ''})` : `failed: ${r.error}`;
                }}, 'Test'), ' ',
                c.can_edit && h('button', {type: 'button', class: 'small', onclick: async () => {
                  if (!confirm(`Delete the connection ${c.name}?`)) return;
                  try {
                    await M.account('/api/v3/connections/' + c.id, {method: 'DELETE'});
                    load();
                  } catch (err) {
                    msg.replaceChildren(failure(err));
                  }
                }}, 'Delete'), ' ', result));
          }))));
      } catch (err) {
        list.replaceChildren(err.status === 401 ? needSession('connections') : failure(err));
      }
    }
    const create = async (e) => {
      e.preventDefault();
      const f = e.target;
      try {
        await M.account('/api/v3/connections', {method: 'POST', body: {name: f.name.value, privacy: f.privacy.value,
          credentials: {host: f.host.value, port: Number(f.port.value) || 5432, database: f.database.value, username: f.username.value, password: f.password.value}}});
        msg.replaceChildren(note('ok', `Connection ${f.name.value} saved.`));
        f.reset();
        load();
      } catch (err) {
        msg.replaceChildren(failure(err));
      }
    };
    box.append(h('h3', null, 'New connection (PostgreSQL / PostGIS)'), h('form', {id: 'connection-form', onsubmit: create},
      h('div', {class: 'row'},
        h('label', null, 'Name', h('input', {type: 'text', name: 'name', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9_-]{0,62}'})),
        h('label', null, 'Privacy', h('select', {name: 'privacy'}, h('option', {value: 'shared'}, 'shared with the organization'), h('option', {value: 'private'}, 'private to me')))),
      h('div', {class: 'row'},
        h('label', null, 'Host', h('input', {type: 'text', name: 'host', required: true})),
        h('label', null, 'Port', h('input', {type: 'number', name: 'port', value: '5432', min: 1, max: 65535})),
        h('label', null, 'Database', h('input', {type: 'text', name: 'database', required: true}))),
      h('div', {class: 'row'},
        h('label', null, 'User', h('input', {type: 'text', name: 'username', required: true, autocomplete: 'off'})),
        h('label', null, 'Password (stored encrypted, never shown again)', h('input', {type: 'password', name: 'password', autocomplete: 'new-password'}))),
      h('div', {class: 'actions'}, h('span', {class: 'grow'}), h('button', {type: 'submit', class: 'primary', id: 'connection-create'}, 'Save connection'))));
    load();
    return null;
  }

  function notFoundView(root) {
    root.append(card('not-found', 'Not found', h('p', null, 'The workspace has no page at ', h('code', null, location.pathname), '. ',
      routeLink('/', 'Go to the imports'))));
    return null;
  }

  // --- frame and routing ---

  const views = {'/': importsView, '/imports': importsView, '/sql': sqlView, '/jobs': jobsView, '/preview': mapsView,
    '/tokens': tokensView, '/connections': connectionsView};
  const titles = {'/tokens': 'Tokens', '/connections': 'Connections', '/': 'Imports', '/imports': 'Imports', '/sql': 'SQL', '/jobs': 'Jobs', '/preview': 'Map preview'};
  let stopView = null;

  function render() {
    if (stopView) stopView();
    const path = location.pathname;
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.pathname === path) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = `Meridian · ${titles[path] || 'Not found'}`;
    main.replaceChildren();
    stopView = (views[path] || notFoundView)(main);
  }

  // Same-app links change the view without reloading the page.
  document.addEventListener('click', (e) => {
    const a = e.target.closest('a');
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (!(a.closest('#nav') || a.hasAttribute('data-route')) || a.origin !== location.origin) return;
    if (!(a.pathname in views)) return; // another app's page (the Builder's /maps, /data)
    e.preventDefault();
    if (a.pathname !== location.pathname) history.pushState(null, '', a.pathname);
    render();
  });
  window.addEventListener('popstate', render);

  const exp = M.expiresAt(claims);
  M.me().then((who) => {
    const link = document.getElementById('account-link');
    if (who && link) link.textContent = who.user.email;
  }, () => {});
  document.getElementById('who').append(
    h('a', {href: '/acc/', id: 'account-link', title: `Token ${claims.jti}` + (exp ? `, expires ${M.formatTime(exp)}` : '')}, claims.sub || 'Account'),
    h('button', {type: 'button', class: 'small', id: 'signout', onclick: async () => {
      await M.signOut();
      location.assign('/acc/');
    }}, 'Sign out'));
  render();
})();
