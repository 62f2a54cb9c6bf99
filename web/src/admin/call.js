// call.js: the admin console's calls. The admin API takes the
// administrator's bearer secret (kept in this tab's sessionStorage) or,
// without one, the session of an administrator.
import {APIError, call, dataToken} from '../api.js';

export const KEY = 'meridian.admin';
export const adminToken = () => sessionStorage.getItem(KEY) || '';

// refused is called when the admin API refuses the caller (the console
// signs out): onRefused sets it.
let refused = () => {};
export const onRefused = (fn) => {
  refused = fn;
};

// admin calls the admin API.
export async function admin(path, {method = 'GET', body} = {}) {
  try {
    return await call(path, {method, body, token: adminToken() || undefined});
  } catch (err) {
    if (err instanceof APIError && err.status === 401) {
      refused();
      throw new Error('unauthorized');
    }
    throw err;
  }
}

// data calls an API that takes an API access token (imports, batch SQL):
// the session gets one for its organization's connections.
export async function data(path, {method = 'GET'} = {}) {
  const token = await dataToken();
  if (!token) throw new Error('no data token');
  return call(path, {method, token});
}
