// Meridian accounts (/acc/): sign in with an access token, see what it
// grants, sign out. Tokens are made with `meridian token create`; this app
// only keeps one in the browser (see common/meridian.js) for the workspace
// app to use. /acc/ is the only page; other paths below it show "not found".
'use strict';

(() => {
  const M = window.Meridian;
  const {h, note} = M;
  const main = document.getElementById('main');
  const next = M.safeNext(new URLSearchParams(location.search).get('next') || '/');

  // checkWithServer asks an API the token allows whether it takes the
  // token: true if it did, false if no such API is cheap to ask; throws
  // the server's refusal.
  async function checkWithServer(token, claims) {
    if (M.hasAPI(claims, 'imports')) {
      await M.api(token, '/api/v3/imports', {params: {limit: 1}});
      return true;
    }
    if (M.hasAPI(claims, 'sql')) {
      await M.api(token, '/api/v3/sql/jobs', {params: {limit: 1}});
      return true;
    }
    return false;
  }

  function signInView(flash) {
    const token = h('textarea', {id: 'token', name: 'token', rows: 5, class: 'code', required: true,
      autocomplete: 'off', spellcheck: 'false', placeholder: 'eyJhbGciOiJFZERTQSIs…'});
    const remember = h('input', {type: 'checkbox', id: 'remember', name: 'remember'});
    const submit = h('button', {type: 'submit', class: 'primary'}, 'Sign in');
    const msg = h('div', {id: 'signin-message'});
    const onsubmit = async (e) => {
      e.preventDefault();
      msg.replaceChildren();
      const value = token.value.trim();
      let claims;
      try {
        ({claims} = M.decodeToken(value));
      } catch (err) {
        msg.append(note('error', err.message));
        return;
      }
      if (M.expired(claims)) {
        msg.append(note('error', `This token expired ${M.fromNow(M.expiresAt(claims))} (${M.formatTime(M.expiresAt(claims))}).`));
        return;
      }
      if (M.notYetValid(claims)) {
        msg.append(note('error', `This token is not valid before ${M.formatTime(claims.nbf * 1000)}.`));
        return;
      }
      submit.disabled = true;
      try {
        await checkWithServer(value, claims);
      } catch (err) {
        submit.disabled = false;
        msg.append(note('error', `The server refused this token: ${err.message}`));
        return;
      }
      M.saveToken(value, remember.checked);
      location.assign(next);
    };
    return h('section', {class: 'card'},
      h('h1', null, 'Sign in'),
      h('p', {class: 'muted'}, 'Paste an access token. An administrator makes one with ',
        h('code', null, 'meridian token create --grant CONN:SOURCE --api maps,sql,imports'), '.'),
      flash,
      h('form', {id: 'signin', onsubmit},
        h('label', null, 'Access token', token),
        h('div', {class: 'actions'},
          h('label', {class: 'check'}, remember, 'Keep me signed in on this browser'),
          h('span', {class: 'grow'}), submit),
        msg));
  }

  function grantsTable(claims) {
    return h('table', {id: 'grants'},
      h('thead', null, h('tr', null, h('th', null, 'Connection'), h('th', null, 'Source'), h('th', null, 'Covers'))),
      h('tbody', null, claims.grants.map((g) => h('tr', null,
        h('td', null, g.connection_name),
        h('td', {class: 'code'}, g.source),
        h('td', null, {everything: 'every table and query', schema: 'every table of the schema', table: 'one table',
          query: 'this SQL query'}[M.sourceKind(g.source)])))));
  }

  function accountView(s, flash) {
    const c = s.claims;
    const exp = M.expiresAt(c);
    const check = h('span', {id: 'server-check', class: 'muted'}, 'checking…');
    checkWithServer(s.token, c).then(
      (done) => check.replaceChildren(done ? 'accepted' : 'not checked (the token allows no imports or SQL API to ask)'),
      (err) => {
        check.className = 'err';
        check.replaceChildren(`refused: ${err.message}`);
      });
    const signOut = () => {
      M.forgetToken();
      history.replaceState(null, '', '/acc/');
      render(note('ok', 'Signed out. The token was forgotten by this browser; it stays valid until it expires or is revoked (meridian token revoke).'));
    };
    return h('section', {class: 'card', id: 'account'},
      h('h1', null, 'Signed in'),
      flash,
      h('dl', {class: 'kv'},
        h('dt', null, 'Token'), h('dd', {class: 'code'}, c.jti),
        h('dt', null, 'Owner'), h('dd', null, c.sub || '—'),
        h('dt', null, 'Organization'), h('dd', null, c.org || 'default'),
        c.iat && [h('dt', null, 'Issued'), h('dd', null, M.formatTime(c.iat * 1000))],
        h('dt', null, 'Expires'), h('dd', {id: 'expiry'}, exp ? `${M.formatTime(exp)} (${M.fromNow(exp)})` : 'never'),
        c.nbf && [h('dt', null, 'Valid from'), h('dd', null, M.formatTime(c.nbf * 1000))],
        h('dt', null, 'APIs'), h('dd', null, h('span', {class: 'chips', id: 'apis'}, c.allowed_apis.map((a) => h('span', {class: 'chip'}, a)))),
        h('dt', null, 'Origins'), h('dd', null, c.referers && c.referers.length ? c.referers.join(', ') : 'any'),
        h('dt', null, 'Kept'), h('dd', null, M.remembered() ? 'in this browser, until you sign out' : 'in this tab, until you close it or sign out'),
        h('dt', null, 'Server'), h('dd', null, check)),
      h('h2', null, 'Grants'),
      grantsTable(c),
      h('p', {class: 'muted'}, 'Decoded in your browser; the server verifies the signature, expiry and revocation on every call.'),
      h('div', {class: 'actions'},
        h('a', {href: next, class: 'button primary', id: 'open-workspace'}, 'Open the workspace'),
        h('button', {type: 'button', id: 'signout', onclick: signOut}, 'Sign out')));
  }

  function notFoundView(path) {
    return h('section', {class: 'card'},
      h('h1', null, 'Not found'),
      h('p', null, 'The accounts app has no page at ', h('code', null, path), '.'),
      h('p', null, h('a', {href: '/acc/'}, 'Go to your account')));
  }

  function render(flash) {
    const path = location.pathname;
    main.replaceChildren();
    if (path === '/acc/' || path === '/acc') {
      const s = M.session();
      document.title = s ? 'Meridian · Account' : 'Meridian · Sign in';
      main.append(s ? accountView(s, flash) : signInView(flash));
      if (!s) document.getElementById('token').focus();
    } else {
      document.title = 'Meridian · Not found';
      main.append(notFoundView(path));
    }
  }

  render();
})();
