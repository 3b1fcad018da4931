// The decision log (GET /decisions): filters, then one row per call; a row opens to its
// reasons, its route with each step's result, who talked and the learned holder.

import {h, fill, field, select, note, localTime} from './dom.js';
import {api, errorText} from './api.js';

const CLASSES = [['', 'any'], ['new', 'new'], ['old', 'old'], ['repeat', 'repeat'], ['callback', 'callback']];
const SERVICES = [['', 'any'], ['manager', 'manager'], ['operator', 'operator'],
  ['self_service', 'self service'], ['ivr', 'IVR']];
const OUTCOMES = [['', 'any'], ['answered', 'answered'], ['queue', 'queue'], ['voicemail', 'voicemail'],
  ['hangup', 'hangup'], ['callback', 'callback requested'], ['caller_hung_up', 'caller hung up'], ['dialplan', 'dialplan (shed)'],
  ['interrupted', 'interrupted']];

let form;
let results;
let loaded = false;

function iso(localValue) {
  // a datetime-local value is the viewer's local time; the API takes an instant
  if (!localValue) return '';
  const d = new Date(localValue);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function details(entry) {
  const reasons = (entry.reasons || []).map((r) => h('li', {},
    h('code', {class: 'rule', text: `[${r.rule}]`}), ' ', h('span', {text: r.text})));
  const steps = (entry.route_steps || []).map((s) => h('li', {},
    h('code', {text: s.step}), ' → ', h('span', {class: `result r-${s.result.replace(/[^a-z_]/g, '')}`, text: s.result})));
  return h('div', {class: 'details'},
    h('div', {},
      h('h4', {text: 'Reasons'}), reasons.length ? h('ul', {class: 'reasons'}, reasons) : note('none recorded')),
    h('div', {},
      h('h4', {text: 'Route'}), steps.length ? h('ol', {class: 'route'}, steps) : note('no route'),
      h('dl', {class: 'facts'},
        h('dt', {text: 'Who talked'}), h('dd', {class: 'talks', text: entry.talks || '—'}),
        h('dt', {text: 'Answered by'}), h('dd', {text: entry.answered_by || '—'}),
        h('dt', {text: 'Learned holder'}), h('dd', {class: 'holder', text: entry.holder || '—'}),
        h('dt', {text: 'Case holder at the call'}), h('dd', {text: entry.owner || '—'}),
        h('dt', {text: 'Fallbacks'}), h('dd', {text: entry.fallbacks || '—'}),
        h('dt', {text: 'Sources'}), h('dd', {text: `history ${entry.history || '?'}, CRM ${entry.crm || '?'}`}),
        h('dt', {text: 'Decided in'}), h('dd', {text: `${entry.decide_ms || '?'} ms`}),
        h('dt', {text: 'Call id'}), h('dd', {text: entry.call_id || ''}))));
}

function rows(entries) {
  const out = [];
  for (const entry of entries) {
    const open = h('tr', {class: 'details-row', hidden: true}, h('td', {colspan: 8}, details(entry)));
    const toggle = () => {
      open.hidden = !open.hidden;
      main.setAttribute('aria-expanded', String(!open.hidden));
    };
    const main = h('tr', {class: 'entry', tabindex: 0, 'aria-expanded': 'false', data: {callId: entry.call_id},
      on: {click: toggle, keydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); toggle(); } }}},
    h('td', {text: localTime(entry.at)}),
    h('td', {class: 'number', text: entry.number || ''}),
    h('td', {text: entry.class || ''}),
    h('td', {text: entry.service || ''}),
    h('td', {class: 'num', text: entry.priority || ''}),
    h('td', {text: entry.outcome || ''}),
    h('td', {text: entry.answered_by || ''}),
    h('td', {class: 'steps', text: entry.steps || ''}));
    out.push(main, open);
  }
  return out;
}

async function search(event) {
  if (event) event.preventDefault();
  const v = (id) => form.querySelector(`#${id}`).value;
  fill(results, note('Searching…'));
  const answer = await api('GET', '/decisions', {params: {
    number: v('log-number'), class: v('log-class'), service: v('log-service'), outcome: v('log-outcome'),
    since: iso(v('log-since')), until: iso(v('log-until')), limit: v('log-limit'),
  }});
  if (!answer.ok) {
    fill(results, note(errorText(answer), 'error'));
    return;
  }
  const entries = answer.data.entries || [];
  if (!entries.length) {
    fill(results, note('No call matches.', 'empty'));
    return;
  }
  fill(results,
    note(`${entries.length} call${entries.length === 1 ? '' : 's'}, newest first; click a row for its reasons and route.`),
    h('table', {id: 'decision-log', class: 'grid'},
      h('thead', {}, h('tr', {}, ['Started', 'Caller', 'Class', 'Service', 'Prio', 'Outcome', 'Answered by', 'Steps']
        .map((t) => h('th', {scope: 'col', text: t})))),
      h('tbody', {}, rows(entries))));
}

export function init(section) {
  form = h('form', {id: 'log-form', class: 'filters', on: {submit: search}},
    field('Number', h('input', {id: 'log-number', type: 'search', placeholder: 'last 4 digits or full'})),
    field('Class', select('log-class', CLASSES)),
    field('Service', select('log-service', SERVICES)),
    field('Outcome', select('log-outcome', OUTCOMES)),
    field('From', h('input', {id: 'log-since', type: 'datetime-local'})),
    field('To', h('input', {id: 'log-until', type: 'datetime-local'})),
    field('Show', h('input', {id: 'log-limit', type: 'number', min: 1, max: 1000, value: 100})),
    h('button', {type: 'submit', text: 'Search'}));
  results = h('div', {id: 'log-results'});
  fill(section, h('h2', {text: 'Decision log'}), form, results);
}

export function activate() {
  if (!loaded) {
    loaded = true;
    search();
  }
}

export function reset() {
  loaded = false;
}
