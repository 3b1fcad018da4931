// The ops API from the page. The token lives in this tab's sessionStorage and goes out as a
// bearer header on each request; no cookie exists, so another site cannot make the browser
// send it (nothing to forge across sites).

const KEY = 'caseline.opsToken';

export const token = {
  get: () => sessionStorage.getItem(KEY) || '',
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export function authHeaders(extra) {
  return {Authorization: `Bearer ${token.get()}`, ...(extra || {})};
}

// A 401 anywhere means the token is no longer good: main.js signs out.
export const UNAUTHORIZED = 'caseline:unauthorized';

// {status, ok, data}: data is the JSON body (or {error: text} when it is not JSON).
export async function api(method, path, options) {
  const {body, contentType, params} = options || {};
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = authHeaders(contentType ? {'Content-Type': contentType} : {});
  let response;
  try {
    response = await fetch(url, {method, headers, body, cache: 'no-store', credentials: 'omit'});
  } catch (e) {
    return {status: 0, ok: false, data: {error: `the ops API is not reachable (${e.message})`}};
  }
  let data;
  try {
    data = await response.json();
  } catch {
    data = {error: `HTTP ${response.status}`};
  }
  if (response.status === 401) window.dispatchEvent(new CustomEvent(UNAUTHORIZED));
  return {status: response.status, ok: response.ok, data};
}

export function errorText(answer) {
  const data = answer.data || {};
  return String(data.error || `HTTP ${answer.status}`);
}
