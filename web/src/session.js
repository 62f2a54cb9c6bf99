// session.js: the access token the workspace (/) and the accounts app
// (/acc/) share. It is the one the data APIs take as Authorization:
// Bearer: a pasted token, or the short-lived data token a browser session
// exchanges for. It is kept in sessionStorage (this tab only) or, when the
// user asks, localStorage (this browser). Its payload is decoded here for
// display only: the server verifies the token on every call.
import {APIError, call, session as me} from './api.js';

const KEY = 'meridian.accessToken';

export const storedToken = () => sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';

// saveToken keeps token for this tab, or for this browser if remember.
export function saveToken(token, remember) {
  forgetToken();
  (remember ? localStorage : sessionStorage).setItem(KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

// remembered reports whether the token is kept beyond this tab.
export const remembered = () => localStorage.getItem(KEY) !== null;

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
export function decodeToken(token) {
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
  if (header?.alg !== 'EdDSA') {
    throw new Error(`This token is signed with ${header?.alg}; Meridian tokens use EdDSA.`);
  }
  if (!claims || typeof claims !== 'object' || typeof claims.jti !== 'string' ||
      !Array.isArray(claims.grants) || !Array.isArray(claims.allowed_apis)) {
    throw new Error('This token carries no Meridian grants (jti, grants, allowed_apis).');
  }
  return {header, claims};
}

export const expiresAt = (claims) => (claims.exp ? new Date(claims.exp * 1000) : null);
export const expired = (claims, now = Date.now()) => !!claims.exp && claims.exp * 1000 <= now;
export const notYetValid = (claims, now = Date.now()) => !!claims.nbf && claims.nbf * 1000 > now;

// tokenSession returns {token, claims} for the stored token, or null when
// there is none or it cannot be used (then it is forgotten).
export function tokenSession() {
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
export const hasAPI = (claims, api) => claims.allowed_apis.includes(api);

// connections lists the connections the token has grants on.
export const connections = (claims) => [...new Set(claims.grants.map((g) => g.connection_name))].sort();

// sourceKind names what a grant's source covers (internal/grant).
const ident = '(?:[A-Za-z_][\\w$]*|"(?:[^"]|"")+")';
const schemaRE = new RegExp(`^(?:${ident}\\.){1,2}\\*$`);
const tableRE = new RegExp(`^(?:${ident}\\.){0,2}${ident}$`);
export function sourceKind(source) {
  const s = source.trim();
  if (s === '*') return 'everything';
  if (schemaRE.test(s)) return 'schema';
  if (tableRE.test(s)) return 'table';
  return 'query';
}

// safeNext returns next as a path on this origin, or '/' when it names
// another origin (or is no URL): sign-in must not lead elsewhere.
export function safeNext(next) {
  try {
    const u = new URL(next, location.origin);
    if (u.origin === location.origin && next.startsWith('/')) return u.pathname + u.search + u.hash;
  } catch {
    // not a URL
  }
  return '/';
}

// sessionToken exchanges the browser session for a short-lived data token
// (kept in this tab) and returns tokenSession(), or null when there is no
// session or the user's role has no data token.
export async function sessionToken() {
  const who = await me();
  if (!who || !['admin', 'editor'].includes(who.user.role)) return null;
  try {
    const t = await call('/accounts-api/session/token', {method: 'POST'});
    saveToken(t.token, false);
    return tokenSession();
  } catch (err) {
    if (err instanceof APIError && [401, 403, 409].includes(err.status)) return null;
    throw err;
  }
}

// signOut ends the browser session (if any) and forgets the stored token;
// everywhere ends every session and user token of the user.
export async function signOut(everywhere = false) {
  forgetToken();
  if (!(await me())) return;
  try {
    await call(everywhere ? '/accounts-api/logout-all' : '/accounts-api/logout', {method: 'POST'});
  } catch (err) {
    if (!(err instanceof APIError && err.status === 401)) throw err;
  }
}
