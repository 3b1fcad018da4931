// Callback requests (GET /callbacks) and "dial now" (POST /callbacks/{id}/dial). A Caseline
// without these routes answers 404: the panel says so instead of failing.

import {h, fill, note, localTime} from './dom.js';
import {api, errorText} from './api.js';

// The columns, in this order, when present (ops/callbacks_api.py: GET /callbacks).
const KNOWN = [['number', 'Caller'], ['name', 'Name'], ['holder', 'Holder'], ['status', 'Status'],
  ['reason', 'Why'], ['priority', 'Prio'], ['filed_at', 'Requested'], ['due_at', 'Due'],
  ['attempts', 'Attempts'], ['result', 'Last result'], ['person', 'Rung']];
const TIMES = new Set(['filed_at', 'due_at', 'expires_at', 'updated_at']);
const DIALLABLE = new Set(['open', 'failed']);  // the API answers 409 for the others, and says why

let out;
let result;

function listOf(data) {
  if (Array.isArray(data)) return data;
  for (const key of ['callbacks', 'requests', 'items']) if (Array.isArray(data?.[key])) return data[key];
  return [];
}

function shown(key, value) {
  if (value === null || value === undefined || value === '') return '—';
  if (TIMES.has(key)) return localTime(value);
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

async function dial(id, button) {
  button.disabled = true;
  fill(result, note(`Dialling ${id}…`));
  const answer = await api('POST', `/callbacks/${encodeURIComponent(id)}/dial`);
  button.disabled = false;
  const who = answer.data.person ? `, ringing ${answer.data.person}` : '';
  fill(result, note(answer.ok ? `Dialling request ${id}: ${answer.data.status || 'started'}${who}`
    : `Could not dial ${id}: ${errorText(answer)}`, answer.ok ? 'ok' : 'error'));
  if (answer.ok) await load();
}

function render(items) {
  if (!items.length) {
    fill(out, note('No callback requests.', 'empty'));
    return;
  }
  const keys = KNOWN.filter(([key]) => items.some((i) => key in i));
  fill(out, h('table', {id: 'callback-list', class: 'grid'},
    h('thead', {}, h('tr', {}, keys.map(([, t]) => h('th', {scope: 'col', text: t})), h('th', {text: ''}))),
    h('tbody', {}, items.map((item) => {
      const id = String(item.id ?? '');
      const button = h('button', {type: 'button', class: 'dial', text: 'Dial now',
        disabled: !id || (item.status && !DIALLABLE.has(item.status))});
      button.addEventListener('click', () => dial(id, button));
      return h('tr', {data: {callbackId: id}}, keys.map(([k]) => h('td', {text: shown(k, item[k])})), h('td', {}, button));
    }))));
}

async function load() {
  fill(out, note('Loading…'));
  const answer = await api('GET', '/callbacks');
  if (answer.status === 404) {
    fill(out, note('Callback requests are not available on this Caseline (its ops API has no /callbacks).', 'unavailable'));
    return;
  }
  if (!answer.ok) {
    fill(out, note(errorText(answer), 'error'));
    return;
  }
  render(listOf(answer.data));
}

export function init(section) {
  out = h('div', {id: 'callbacks-out'});
  result = h('div', {id: 'callbacks-result'});
  fill(section, h('h2', {text: 'Callback requests'}),
    h('button', {type: 'button', class: 'quiet', text: 'Refresh', on: {click: load}}), result, out);
}

export function activate() {
  load();
}
