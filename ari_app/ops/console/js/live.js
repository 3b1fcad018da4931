// Live calls: the server pushes a snapshot of the calls in progress on every change
// (GET /events/calls); elapsed times tick here, once a second, from each call's start.

import {h, fill, table, note, duration} from './dom.js';
import {subscribe} from './sse.js';
import {UNAUTHORIZED} from './api.js';

const RINGING = new Set(['manager', 'supervisor']);
const STATES = {
  live: ['live', 'Live: updated as calls change'],
  reconnecting: ['down', 'Reconnecting…'],
  busy: ['down', 'Too many open consoles; retrying…'],
  unauthorized: ['down', 'Signed out'],
};

let root;
let status;
let body;
let endedList;
let calls = [];
let offset = 0;  // server clock minus ours, seconds
let stop = null;
let ticker = null;
const ended = [];  // the last calls that ended, newest first
const lastSeen = new Map();  // call id -> its last live view (for the ended list)

function rings(step) {
  const [kind, target] = String(step || '').split(':');
  if (RINGING.has(kind) && target) return `${target} (${kind})`;
  if (kind === 'queue' && target) return `queue ${target}`;
  return '';
}

function caller(call) {
  return h('div', {class: 'caller'},
    h('span', {class: 'number', text: call.number || 'unidentified'}),
    call.name ? h('span', {class: 'name', text: call.name}) : null);
}

function row(call) {
  return h('tr', {data: {callId: call.call_id}},
    h('td', {}, caller(call)),
    h('td', {text: call.client || ''}),
    h('td', {text: call.class || ''}),
    h('td', {text: call.service || ''}),
    h('td', {class: 'step', text: call.step || ''}),
    h('td', {text: rings(call.step)}),
    h('td', {class: 'elapsed num', data: {started: call.started}, text: ''}),
    h('td', {class: 'num', text: call.priority ?? ''}),
  );
}

function tick() {
  const now = Date.now() / 1000 + offset;
  for (const cell of body.querySelectorAll('td.elapsed')) {
    cell.textContent = duration(now - Number(cell.dataset.started));
  }
}

function render() {
  if (!calls.length) {
    fill(body, note('No calls in progress.', 'empty'));
  } else {
    fill(body, table(['Caller', 'Client', 'Class', 'Service', 'Step', 'Ringing', 'Elapsed', 'Prio'],
      calls.map(row), {id: 'live-calls', class: 'grid'}));
  }
  tick();
  fill(endedList, ended.map((e) => h('li', {data: {callId: e.call_id}},
    h('span', {class: 'number', text: e.number}), ' ', h('span', {text: `ended: ${e.outcome}`}))));
}

function onEvent(type, data) {
  if (type === 'snapshot') {
    calls = Array.isArray(data.calls) ? data.calls : [];
    if (typeof data.now === 'number') offset = data.now - Date.now() / 1000;
    for (const call of calls) lastSeen.set(call.call_id, call);
    render();
  } else if (type === 'ended') {
    const seen = lastSeen.get(data.call_id) || {};
    lastSeen.delete(data.call_id);
    ended.unshift({call_id: data.call_id, number: seen.number || data.call_id, outcome: data.outcome || '?'});
    ended.length = Math.min(ended.length, 10);
  }
}

function onState(state) {
  const [kind, text] = STATES[state] || STATES.reconnecting;
  status.className = `stream ${kind}`;
  status.textContent = text;
  if (state === 'unauthorized') window.dispatchEvent(new CustomEvent(UNAUTHORIZED));
}

export function init(section) {
  root = section;
  status = h('p', {id: 'live-status', class: 'stream down', text: 'Connecting…'});
  body = h('div', {id: 'live-body'});
  endedList = h('ul', {id: 'live-ended', class: 'ended'});
  fill(root, h('h2', {text: 'Live calls'}), status, body, h('h3', {text: 'Just ended'}), endedList);
}

export function start() {
  if (stop) return;
  stop = subscribe('/events/calls', onEvent, onState);
  ticker = setInterval(tick, 1000);
}

export function halt() {
  if (stop) stop();
  stop = null;
  clearInterval(ticker);
  calls = [];
  ended.length = 0;
  lastSeen.clear();
}
