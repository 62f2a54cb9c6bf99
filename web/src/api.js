// api.js: the web apps' calls to Meridian. The workspace, accounts and
// admin APIs take the browser session (a same-origin cookie, which CSRF
// protection lets through); the data APIs (maps, SQL, stats, widgets,
// imports) take an access token: a short-lived data token the session
// exchanges for (POST /accounts-api/session/token), as @carto/api-client
// sends it, or a pasted one (session.js).

export class APIError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = 'APIError';
    this.status = status;
    this.code = code;
  }
}

// apiBaseUrl is what @carto/api-client calls (…/v3/maps, …/v3/sql).
export const apiBaseUrl = () => location.origin + '/api';

async function answer(res) {
  if (res.status === 204) return null;
  return parse(res.status, res.statusText, await res.text());
}

// parse returns an answer's JSON body, or throws an APIError carrying the
// server's message ({"error", "status", "code"}).
function parse(status, statusText, text) {
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below
  }
  if (status < 200 || status > 299) {
    throw new APIError(body?.error || `${status} ${statusText || ''}`.trim(), status, body?.code);
  }
  return body;
}

// call sends a request with the session cookie, or with token as bearer:
// body is JSON, a Blob or FormData; params become the query string.
export async function call(path, {method = 'GET', body, params, signal, token, headers = {}} = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const h = {Accept: 'application/json', ...headers};
  if (token) h.Authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && !(body instanceof Blob) && !(body instanceof FormData)) {
    h['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  } else if (body instanceof Blob && body.type) {
    h['Content-Type'] = body.type;
  }
  let res;
  try {
    res = await fetch(url, {method, headers: h, body: payload, credentials: 'same-origin', cache: 'no-store', signal});
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new APIError(`The server did not answer (${err.message}).`, 0, 'NETWORK');
  }
  return answer(res);
}

// upload POSTs form to path with token, reporting upload progress to
// onProgress(sent, total) (fetch cannot), and returns the JSON answer.
export function upload(path, form, {token, onProgress} = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.addEventListener('progress', (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : 0));
    xhr.addEventListener('load', () => {
      try {
        resolve(parse(xhr.status, xhr.statusText, xhr.responseText));
      } catch (err) {
        reject(err);
      }
    });
    xhr.addEventListener('error', () => reject(new APIError('The upload failed: the server did not answer.', 0, 'NETWORK')));
    xhr.send(form);
  });
}

// session is the signed-in user ({user, org}) or null.
export async function session() {
  const s = await call('/accounts-api/session');
  return s?.signedIn ? s : null;
}

let tokenCache = null;

// dataToken returns a data token of the session (editors and admins),
// renewed a minute before it expires; null for viewers and guests.
export async function dataToken() {
  if (tokenCache && tokenCache.expires - Date.now() > 60_000) return tokenCache.token;
  try {
    const t = await call('/accounts-api/session/token', {method: 'POST'});
    tokenCache = {token: t.token, expires: new Date(t.expiresAt).getTime()};
    return t.token;
  } catch (err) {
    if (err instanceof APIError && [401, 403, 409].includes(err.status)) return null;
    throw err;
  }
}

// sql runs a query on a connection with the data token; params, an
// object, binds the query's :name and @name placeholders.
export async function sql(token, conn, q, {signal, params} = {}) {
  const path = `/api/v3/sql/${encodeURIComponent(conn)}/query`;
  const init = {headers: {Authorization: `Bearer ${token}`, Accept: 'application/json'}, cache: 'no-store', signal};
  const bound = params && Object.keys(params).length ? params : undefined;
  const query = {q, ...(bound && {queryParameters: JSON.stringify(bound)})};
  const res = q.length > 4000
    ? await fetch(path, {...init, method: 'POST', headers: {...init.headers, 'Content-Type': 'application/json'}, body: JSON.stringify({q, ...(bound && {queryParameters: bound})})})
    : await fetch(path + '?' + new URLSearchParams(query), init);
  return answer(res);
}

export const signInURL = () => '/acc/?next=' + encodeURIComponent(location.pathname + location.search);

// maps: the workspace API of Builder maps.
export const maps = {
  list: (params) => call('/workspace-api/maps', {params}),
  get: (id) => call(`/workspace-api/maps/${encodeURIComponent(id)}`),
  create: (body) => call('/workspace-api/maps', {method: 'POST', body}),
  patch: (id, body, signal) => call(`/workspace-api/maps/${encodeURIComponent(id)}`, {method: 'PATCH', body, signal}),
  remove: (id) => call(`/workspace-api/maps/${encodeURIComponent(id)}`, {method: 'DELETE'}),
  duplicate: (id) => call(`/workspace-api/maps/${encodeURIComponent(id)}/duplicate`, {method: 'POST'}),
  publish: (id, body) => call(`/workspace-api/maps/${encodeURIComponent(id)}/publish`, {method: 'POST', body: body || {}}),
  unpublish: (id) => call(`/workspace-api/maps/${encodeURIComponent(id)}/publish`, {method: 'DELETE'}),
  thumbnail: (id, blob) => call(`/workspace-api/maps/${encodeURIComponent(id)}/thumbnail`, {method: 'PUT', body: blob}),
};

// catalog: connections, schemas, tables, columns and samples.
export const catalog = {
  connections: () => call('/api/v3/connections'),
  schemas: (conn) => call(`/workspace-api/connections/${encodeURIComponent(conn)}/schemas`),
  tables: (conn, schema) => call(`/workspace-api/connections/${encodeURIComponent(conn)}/schemas/${encodeURIComponent(schema)}/tables`),
  table: (conn, table) => call(`/workspace-api/connections/${encodeURIComponent(conn)}/tables/${encodeURIComponent(table)}`),
  sample: (conn, table) => call(`/workspace-api/connections/${encodeURIComponent(conn)}/tables/${encodeURIComponent(table)}/sample`),
};

export const users = () => call('/workspace-api/users');
