// What Meridian's web apps share: the workspace (/) and accounts (/acc/).
// A classic script, loaded (deferred) before each app's own script, that
// defines window.Meridian.
//
// The session is an access token, the same one the APIs take as
// Authorization: Bearer. It is kept in sessionStorage (this tab only) or,
// when the user asks, localStorage (this browser); both apps share it as
// they share the origin. Its payload is decoded here for display only: the
// server verifies the token on every call.
//
// Pages are built with DOM calls (h below), never from HTML strings, and
// the edge serves them with a Content-Security-Policy allowing only this
// origin's scripts and styles.
'use strict';

(() => {
  const KEY = 'meridian.accessToken';

  function storedToken() {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';
  }

  // saveToken keeps token for this tab, or for this browser if remember.
  function saveToken(token, remember) {
    forgetToken();
    (remember ? localStorage : sessionStorage).setItem(KEY, token);
  }

  function forgetToken() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  }

  // remembered reports whether the token is kept beyond this tab.
  const remembered = () => localStorage.getItem(KEY) !== null;

  function b64urlJSON(part) {
    if (!/^[A-Za-z0-9_-]+$/.test(part)) throw new Error('not base64url');
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (part.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder('utf-8', {fatal: true}).decode(bytes));
  }

  // decodeToken returns a token's JWS header and claims ({jti, sub, org,
  // iat, nbf, exp, grants: [{connection_name, source}], allowed_apis,
  // referers}), or throws an Error saying why it is not a Meridian token.
  // It does not check the signature: only the server can.
  function decodeToken(token) {
    const parts = token.trim().split('.');
    if (parts.length !== 3 || parts.some((p) => p === '')) {
      throw new Error('An access token has three parts separated by dots; this is not one.');
    }
    let header, claims;
    try {
      header = b64urlJSON(parts[0]);
      claims = b64urlJSON(parts[1]);
    } catch {
      throw new Error('This is not an access token: its parts are not base64url-encoded JSON.');
    }
    if (!header || header.alg !== 'EdDSA') {
      throw new Error(`This token is signed with ${header && header.alg}; Meridian tokens use EdDSA.`);
    }
    if (!claims || typeof claims !== 'object' || typeof claims.jti !== 'string' ||
        !Array.isArray(claims.grants) || !Array.isArray(claims.allowed_apis)) {
      throw new Error('This token carries no Meridian grants (jti, grants, allowed_apis).');
    }
    return {header, claims};
  }

  const expiresAt = (claims) => (claims.exp ? new Date(claims.exp * 1000) : null);
  const expired = (claims, now = Date.now()) => !!claims.exp && claims.exp * 1000 <= now;
  const notYetValid = (claims, now = Date.now()) => !!claims.nbf && claims.nbf * 1000 > now;

  // session returns {token, claims} for the stored token, or null when
  // there is none or it cannot be used (then it is forgotten).
  function session() {
    const token = storedToken();
    if (!token) return null;
    try {
      const {claims} = decodeToken(token);
      if (expired(claims)) throw new Error('expired');
      return {token, claims};
    } catch {
      forgetToken();
      return null;
    }
  }

  // hasAPI reports whether the token allows api (maps, sql, imports, lds).
  const hasAPI = (claims, api) => claims.allowed_apis.includes(api);

  // connections lists the connections the token has grants on.
  const connections = (claims) => [...new Set(claims.grants.map((g) => g.connection_name))].sort();

  // sourceKind names what a grant's source covers (internal/grant).
  const ident = '(?:[A-Za-z_][\\w$]*|"(?:[^"]|"")+")';
  const schemaRE = new RegExp(`^(?:${ident}\\.){1,2}\\*$`);
  const tableRE = new RegExp(`^(?:${ident}\\.){0,2}${ident}$`);
  function sourceKind(source) {
    const s = source.trim();
    if (s === '*') return 'everything';
    if (schemaRE.test(s)) return 'schema';
    if (tableRE.test(s)) return 'table';
    return 'query';
  }

  // safeNext returns next as a path on this origin, or '/' when it names
  // another origin (or is no URL): sign-in must not lead elsewhere.
  function safeNext(next) {
    try {
      const u = new URL(next, location.origin);
      if (u.origin === location.origin && next.startsWith('/')) return u.pathname + u.search + u.hash;
    } catch {
      // not a URL
    }
    return '/';
  }

  // signInURL is the accounts app's sign-in, coming back here afterwards.
  const signInURL = () => '/acc/?next=' + encodeURIComponent(location.pathname + location.search);

  class APIError extends Error {
    constructor(message, status, code) {
      super(message);
      this.name = 'APIError';
      this.status = status;
      this.code = code;
    }
  }

  // answer turns a response into its JSON body, or throws an APIError
  // carrying the server's message ({"error", "status", "code"}).
  function answer(status, statusText, text) {
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      // not JSON: reported below
    }
    if (status < 200 || status > 299 || body === null) {
      const msg = body && body.error ? body.error : `${status} ${statusText || ''}`.trim() + (body === null && status < 300 ? ': the answer is not JSON' : '');
      throw new APIError(msg, status, body && body.code);
    }
    return body;
  }

  // api calls a Meridian API path with token and returns the JSON answer.
  // body: an object (sent as JSON) or FormData; params: query parameters.
  async function api(token, path, {method = 'GET', body, params, signal} = {}) {
    const url = new URL(path, location.origin);
    for (const [k, v] of Object.entries(params || {})) url.searchParams.set(k, v);
    const headers = {Accept: 'application/json', Authorization: `Bearer ${token}`};
    let payload;
    if (body instanceof FormData) {
      payload = body;
    } else if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(url, {method, headers, body: payload, cache: 'no-store', signal});
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new APIError(`The server did not answer (${err.message}).`, 0, 'NETWORK');
    }
    return answer(res.status, res.statusText, await res.text());
  }

  // upload POSTs form to path with token, reporting upload progress to
  // onProgress(sent, total) (fetch cannot), and returns the JSON answer.
  function upload(token, path, form, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', path);
      xhr.setRequestHeader('Authorization', `Bearer ${token}`);
      xhr.setRequestHeader('Accept', 'application/json');
      xhr.upload.addEventListener('progress', (e) => onProgress && onProgress(e.loaded, e.lengthComputable ? e.total : 0));
      xhr.addEventListener('load', () => {
        try {
          resolve(answer(xhr.status, xhr.statusText, xhr.responseText));
        } catch (err) {
          reject(err);
        }
      });
      xhr.addEventListener('error', () => reject(new APIError('The upload failed: the server did not answer.', 0, 'NETWORK')));
      xhr.send(form);
    });
  }

  // account calls the accounts API with the session cookie (same origin,
  // so the browser sends it and CSRF protection lets it through) and
  // returns the JSON answer (null for 204); errors are APIErrors.
  async function account(path, {method = 'GET', body} = {}) {
    const headers = {Accept: 'application/json'};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin', cache: 'no-store'});
    } catch (err) {
      throw new APIError(`The server did not answer (${err.message}).`, 0, 'NETWORK');
    }
    if (res.status === 204) return null;
    return answer(res.status, res.statusText, await res.text());
  }

  // me is the signed-in user ({user, org, via}) or null.
  async function me() {
    const s = await account('/accounts-api/session');
    return s.signedIn ? s : null;
  }

  // sessionToken exchanges the session for a short-lived data token (kept
  // in this tab) and returns session(), or null when there is no session
  // or the user's role has no data token.
  async function sessionToken() {
    const who = await me();
    if (!who || !['admin', 'editor'].includes(who.user.role)) return null;
    try {
      const t = await account('/accounts-api/session/token', {method: 'POST'});
      saveToken(t.token, false);
      return session();
    } catch (err) {
      if (err instanceof APIError && (err.status === 401 || err.status === 403 || err.status === 409)) return null;
      throw err;
    }
  }

  // signOut ends the session (if any) and forgets the stored token.
  async function signOut(everywhere = false) {
    forgetToken();
    if (!(await me())) return;
    try {
      await account(everywhere ? '/accounts-api/logout-all' : '/accounts-api/logout', {method: 'POST'});
    } catch (err) {
      if (!(err instanceof APIError && err.status === 401)) throw err;
    }
  }

  // h builds an element: h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child…).
  // Strings become text nodes; null, undefined and false are left out.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value' || k === 'checked') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  // note is a message box: kind '', 'error', 'ok' or 'warn'.
  const note = (kind, ...children) => h('div', {class: `note ${kind}`.trim(), role: kind === 'error' ? 'alert' : 'status'}, ...children);

  const dateFmt = new Intl.DateTimeFormat(undefined, {dateStyle: 'medium', timeStyle: 'short'});
  const formatTime = (t) => (t ? dateFmt.format(t instanceof Date ? t : new Date(t)) : '');

  const relFmt = new Intl.RelativeTimeFormat(undefined, {numeric: 'auto'});
  // fromNow says when t is, relative to now ("in 3 days", "5 minutes ago").
  function fromNow(t, now = Date.now()) {
    const s = Math.round(((t instanceof Date ? t.getTime() : new Date(t).getTime()) - now) / 1000);
    const units = [['year', 31536000], ['month', 2592000], ['day', 86400], ['hour', 3600], ['minute', 60]];
    for (const [unit, secs] of units) {
      if (Math.abs(s) >= secs) return relFmt.format(Math.trunc(s / secs), unit);
    }
    return relFmt.format(s, 'second');
  }

  function formatBytes(n) {
    if (!Number.isFinite(n)) return '';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
  }

  const formatCount = (n) => (Number.isFinite(n) ? n.toLocaleString() : '');

  window.Meridian = {
    storedToken, saveToken, forgetToken, remembered, decodeToken, expiresAt, expired, notYetValid, session,
    hasAPI, connections, sourceKind, safeNext, signInURL, APIError, api, upload, h, note, account, me, sessionToken, signOut,
    formatTime, fromNow, formatBytes, formatCount,
  };
})();
