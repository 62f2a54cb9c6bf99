// Meridian accounts (/acc/): sign in with email and password (a session
// cookie, /accounts-api) or with an access token; sign up (the first user
// of an install, an invite link, or open sign-up); forgotten password and
// reset; the profile (name, password, sign out, sign out everywhere); and,
// for admins, the organization's people (/acc/users: roles, invites,
// removal). Pages: /acc/, /acc/signup, /acc/invite, /acc/forgot,
// /acc/reset, /acc/users; other paths show "not found".
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
      h('h2', null, 'Or sign in with an access token'),
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

  // ---- sessions: email and password ----

  const field = (label, attrs) => h('label', null, label, h('input', attrs));
  const formError = (box, err) => box.replaceChildren(note('error', err.message || String(err)));

  // afterSignIn picks up a data token for the workspace (editors) and goes on.
  async function afterSignIn() {
    await M.sessionToken();
    location.assign(next);
  }

  const urlError = new URLSearchParams(location.search).get('error');

  function passwordSignInView(flash, status) {
    const msg = h('div', {id: 'login-message'});
    const submit = h('button', {type: 'submit', class: 'primary', id: 'login-submit'}, 'Sign in');
    const onsubmit = async (e) => {
      e.preventDefault();
      msg.replaceChildren();
      submit.disabled = true;
      try {
        await M.account('/accounts-api/login', {method: 'POST', body: {email: e.target.email.value, password: e.target.password.value}});
        await afterSignIn();
      } catch (err) {
        submit.disabled = false;
        formError(msg, err);
      }
    };
    return h('section', {class: 'card', id: 'password-signin'},
      h('h1', null, 'Sign in'),
      flash,
      urlError && note('error', urlError),
      status && status.setupRequired && note('ok', 'This install has no account yet. ', h('a', {href: '/acc/signup', id: 'setup-link'}, 'Create the first one'), ': it becomes the administrator.'),
      h('form', {id: 'login', onsubmit},
        field('Email', {type: 'email', name: 'email', id: 'login-email', required: true, autocomplete: 'username'}),
        field('Password', {type: 'password', name: 'password', id: 'login-password', required: true, autocomplete: 'current-password'}),
        h('div', {class: 'actions'},
          h('a', {href: '/acc/forgot'}, 'Forgot the password?'),
          status && status.signupPolicy === 'open' && h('a', {href: '/acc/signup'}, 'Create an account'),
          h('span', {class: 'grow'}), submit),
        msg),
      status && status.sso && h('div', {class: 'actions'},
        h('a', {href: status.sso.login + '?next=' + encodeURIComponent(next), class: 'button', id: 'sso-button'}, `Sign in with ${status.sso.name}`)));
  }

  async function signupView(flash) {
    const params = new URLSearchParams(location.search);
    const invite = params.get('token') || '';
    let info = null;
    if (invite) {
      try {
        info = await M.account('/accounts-api/invites/' + encodeURIComponent(invite));
      } catch (err) {
        return h('section', {class: 'card'}, h('h1', null, 'Invite'), note('error', err.message), h('p', null, h('a', {href: '/acc/'}, 'Sign in')));
      }
    }
    const msg = h('div', {id: 'signup-message'});
    const submit = h('button', {type: 'submit', class: 'primary', id: 'signup-submit'}, 'Create the account');
    const onsubmit = async (e) => {
      e.preventDefault();
      msg.replaceChildren();
      const f = e.target;
      if (f.password.value !== f.password2.value) {
        msg.append(note('error', 'The two passwords differ.'));
        return;
      }
      submit.disabled = true;
      try {
        await M.account('/accounts-api/signup', {method: 'POST', body: {email: f.email.value, name: f.name.value, password: f.password.value, invite: invite || undefined}});
        await afterSignIn();
      } catch (err) {
        submit.disabled = false;
        formError(msg, err);
      }
    };
    return h('section', {class: 'card', id: 'signup'},
      h('h1', null, info ? `Join ${info.org}` : 'Create an account'),
      flash,
      info && h('p', {class: 'muted', id: 'invite-info'}, `You are invited as ${info.role}.`),
      h('form', {onsubmit},
        field('Email', {type: 'email', name: 'email', id: 'signup-email', required: true, autocomplete: 'username', value: info ? info.email : undefined, readonly: info ? true : undefined}),
        field('Name', {type: 'text', name: 'name', id: 'signup-name', maxlength: 200, autocomplete: 'name'}),
        field('Password (10 characters or more)', {type: 'password', name: 'password', id: 'signup-password', required: true, minlength: 10, autocomplete: 'new-password'}),
        field('Password again', {type: 'password', name: 'password2', id: 'signup-password2', required: true, autocomplete: 'new-password'}),
        h('div', {class: 'actions'}, h('a', {href: '/acc/'}, 'I have an account'), h('span', {class: 'grow'}), submit),
        msg));
  }

  function forgotView() {
    const msg = h('div', {id: 'forgot-message'});
    const onsubmit = async (e) => {
      e.preventDefault();
      try {
        const r = await M.account('/accounts-api/password/forgot', {method: 'POST', body: {email: e.target.email.value}});
        msg.replaceChildren(note('ok', r.status + '.'));
      } catch (err) {
        formError(msg, err);
      }
    };
    return h('section', {class: 'card'}, h('h1', null, 'Forgotten password'),
      h('form', {onsubmit},
        field('Email', {type: 'email', name: 'email', required: true, autocomplete: 'username'}),
        h('div', {class: 'actions'}, h('span', {class: 'grow'}), h('button', {type: 'submit', class: 'primary'}, 'Send a reset link')),
        msg));
  }

  function resetView() {
    const token = new URLSearchParams(location.search).get('token') || '';
    const msg = h('div', {id: 'reset-message'});
    const onsubmit = async (e) => {
      e.preventDefault();
      try {
        await M.account('/accounts-api/password/reset', {method: 'POST', body: {token, password: e.target.password.value}});
        history.replaceState(null, '', '/acc/');
        render(note('ok', 'Password changed. Sign in with the new one.'));
      } catch (err) {
        formError(msg, err);
      }
    };
    return h('section', {class: 'card'}, h('h1', null, 'New password'),
      h('form', {onsubmit},
        field('New password (10 characters or more)', {type: 'password', name: 'password', required: true, minlength: 10, autocomplete: 'new-password'}),
        h('div', {class: 'actions'}, h('span', {class: 'grow'}), h('button', {type: 'submit', class: 'primary'}, 'Set the password')),
        msg));
  }

  function profileView(who, flash) {
    const u = who.user;
    const msg = h('div', {id: 'profile-message'});
    const signOut = async (everywhere) => {
      await M.signOut(everywhere);
      history.replaceState(null, '', '/acc/');
      render(note('ok', everywhere ? 'Signed out on every device.' : 'Signed out.'));
    };
    const save = async (e) => {
      e.preventDefault();
      const f = e.target;
      const body = {name: f.name.value};
      if (f.password.value) Object.assign(body, {password: f.password.value, currentPassword: f.current.value});
      try {
        await M.account('/accounts-api/me', {method: 'PATCH', body});
        msg.replaceChildren(note('ok', 'Saved.'));
        f.password.value = f.current.value = '';
      } catch (err) {
        formError(msg, err);
      }
    };
    return h('section', {class: 'card', id: 'profile'},
      h('h1', null, 'Your account'),
      flash,
      h('dl', {class: 'kv'},
        h('dt', null, 'Email'), h('dd', {id: 'profile-email'}, u.email),
        h('dt', null, 'Role'), h('dd', {id: 'profile-role'}, u.role),
        h('dt', null, 'Organization'), h('dd', {id: 'profile-org'}, who.org.name)),
      h('form', {onsubmit: save},
        field('Name', {type: 'text', name: 'name', maxlength: 200, value: u.name}),
        field('New password (leave empty to keep it)', {type: 'password', name: 'password', minlength: 10, autocomplete: 'new-password'}),
        field('Current password', {type: 'password', name: 'current', autocomplete: 'current-password'}),
        h('div', {class: 'actions'}, h('span', {class: 'grow'}), h('button', {type: 'submit'}, 'Save')),
        msg),
      h('div', {class: 'actions'},
        u.role === 'admin' && h('a', {href: '/acc/users', class: 'button', id: 'people-link'}, 'People'),
        (u.role === 'admin' || u.role === 'editor') && h('a', {href: next, class: 'button primary', id: 'open-workspace'}, 'Open the workspace'),
        h('span', {class: 'grow'}),
        h('button', {type: 'button', id: 'signout', onclick: () => signOut(false)}, 'Sign out'),
        h('button', {type: 'button', id: 'signout-all', onclick: () => signOut(true)}, 'Sign out everywhere')));
  }

  async function usersView(who) {
    const box = h('div', {id: 'people'});
    const msg = h('div', {id: 'people-message'});
    const roles = ['admin', 'editor', 'viewer', 'guest'];
    async function load() {
      const [{users}, {invites}] = await Promise.all([M.account('/workspace-api/users'), M.account('/workspace-api/invites')]);
      const receivers = users.filter((x) => x.role === 'admin' || x.role === 'editor');
      box.replaceChildren(
        h('table', {id: 'users'},
          h('thead', null, h('tr', null, h('th', null, 'Email'), h('th', null, 'Name'), h('th', null, 'Role'), h('th', null, 'Remove'))),
          h('tbody', null, users.map((x) => {
            const sel = h('select', {'aria-label': `Role of ${x.email}`, onchange: async (e) => {
              try {
                await M.account('/workspace-api/users/' + x.id, {method: 'PATCH', body: {role: e.target.value}});
                msg.replaceChildren(note('ok', `${x.email} is now ${e.target.value}.`));
              } catch (err) {
                formError(msg, err);
              }
              load();
            }}, roles.map((r) => h('option', {value: r, selected: r === x.role ? true : undefined}, r)));
            const recv = h('select', {'aria-label': `Who receives ${x.email}'s tokens and maps`},
              receivers.filter((r) => r.id !== x.id).map((r) => h('option', {value: r.id}, r.email)));
            const rm = h('button', {type: 'button', class: 'small', onclick: async () => {
              if (!confirm(`Remove ${x.email}? Their tokens, imports, jobs and maps go to ${recv.selectedOptions[0]?.textContent}.`)) return;
              try {
                await M.account(`/workspace-api/users/${x.id}?receiver=${encodeURIComponent(recv.value)}`, {method: 'DELETE'});
                msg.replaceChildren(note('ok', `${x.email} removed.`));
              } catch (err) {
                formError(msg, err);
              }
              load();
            }}, 'Remove');
            return h('tr', {'data-email': x.email}, h('td', null, x.email), h('td', null, x.name), h('td', null, sel),
              h('td', null, x.id === who.user.id ? 'you' : [recv, ' ', rm]));
          }))),
        h('h2', null, 'Invites'),
        h('table', {id: 'invites'},
          h('thead', null, h('tr', null, h('th', null, 'Email'), h('th', null, 'Role'), h('th', null, 'State'), h('th', null, ''))),
          h('tbody', null, invites.map((i) => h('tr', null, h('td', null, i.email), h('td', null, i.role),
            h('td', null, i.usedAt ? 'accepted' : i.revokedAt ? 'revoked' : new Date(i.expiresAt) < new Date() ? 'expired' : `open until ${M.formatTime(i.expiresAt)}`),
            h('td', null, !i.usedAt && !i.revokedAt && h('button', {type: 'button', class: 'small', onclick: async () => {
              await M.account('/workspace-api/invites/' + i.id, {method: 'DELETE'});
              load();
            }}, 'Revoke')))))));
    }
    const invite = async (e) => {
      e.preventDefault();
      try {
        const i = await M.account('/workspace-api/invites', {method: 'POST', body: {email: e.target.email.value, role: e.target.role.value}});
        msg.replaceChildren(i.mailed ? note('ok', `Invite mailed to ${i.email}.`)
          : note('ok', `No mail server is configured: send ${i.email} this link yourself: `, h('code', {id: 'invite-link'}, i.link)));
        e.target.reset();
      } catch (err) {
        formError(msg, err);
      }
      load();
    };
    try {
      await load();
    } catch (err) {
      formError(msg, err);
    }
    return h('section', {class: 'card wide'}, h('h1', null, 'People'), msg,
      h('form', {id: 'invite-form', onsubmit: invite, class: 'inline'},
        field('Invite by email', {type: 'email', name: 'email', id: 'invite-email', required: true}),
        h('label', null, 'Role', h('select', {name: 'role', id: 'invite-role'}, roles.map((r) => h('option', {value: r, selected: r === 'viewer' ? true : undefined}, r)))),
        h('button', {type: 'submit', class: 'primary', id: 'invite-submit'}, 'Invite')),
      box);
  }

  async function render(flash) {
    const path = location.pathname.replace(/\/$/, '') || '/acc';
    main.replaceChildren();
    let view;
    try {
      if (path === '/acc') {
        const s = M.session();
        const who = await M.me();
        if (who) {
          document.title = 'Meridian · Account';
          view = profileView(who, flash);
        } else if (s && !M.storedToken().startsWith('mut_')) {
          document.title = 'Meridian · Account';
          view = accountView(s, flash);
        } else {
          document.title = 'Meridian · Sign in';
          const status = await M.account('/accounts-api/status').catch(() => null);
          view = [passwordSignInView(flash, status), signInView()];
        }
      } else if (path === '/acc/signup' || path === '/acc/invite') {
        document.title = 'Meridian · Sign up';
        view = await signupView(flash);
      } else if (path === '/acc/forgot') {
        document.title = 'Meridian · Forgotten password';
        view = forgotView();
      } else if (path === '/acc/reset') {
        document.title = 'Meridian · New password';
        view = resetView();
      } else if (path === '/acc/users') {
        const who = await M.me();
        document.title = 'Meridian · People';
        view = who && who.user.role === 'admin' ? await usersView(who)
          : h('section', {class: 'card'}, h('h1', null, 'People'), note('error', 'Only administrators manage people.'), h('p', null, h('a', {href: '/acc/'}, 'Your account')));
      } else {
        document.title = 'Meridian · Not found';
        view = notFoundView(location.pathname);
      }
    } catch (err) {
      view = h('section', {class: 'card'}, h('h1', null, 'Error'), note('error', err.message || String(err)));
    }
    main.replaceChildren(...[view].flat());
    const first = main.querySelector('#login-email, #signup-email:not([readonly]), #signup-name');
    if (first) first.focus();
  }

  render();
})();
