// signedin.js: where signing in leads, and asking the server about a token.
import {call} from '../api.js';
import {hasAPI, safeNext} from '../session.js';

// next is where signing in leads: a path on this origin.
export const next = safeNext(new URLSearchParams(location.search).get('next') || '/');

// checkWithServer asks an API the token allows whether it takes the
// token: true if it did, false if no such API is cheap to ask; throws the
// server's refusal.
export async function checkWithServer(token, claims) {
  if (hasAPI(claims, 'imports')) {
    await call('/api/v3/imports', {token, params: {limit: 1}});
    return true;
  }
  if (hasAPI(claims, 'sql')) {
    await call('/api/v3/sql/jobs', {token, params: {limit: 1}});
    return true;
  }
  return false;
}
