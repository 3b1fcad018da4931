// Explain a number (GET /explain): who the caller is and where a call would go, now or at a
// given moment; the same JSON as `caseline explain --json`, shown in full below a summary.

import {h, fill, field, note} from './dom.js';
import {api, errorText} from './api.js';

let form;
let out;

function facts(pairs) {
  return h('dl', {class: 'facts'}, pairs.filter(([, v]) => v !== undefined)
    .map(([k, v]) => [h('dt', {text: k}), h('dd', {text: v === null || v === '' ? '—' : String(v)})]));
}

function render(data) {
  const crm = data.crm || {};
  const company = data.company || null;
  const decision = data.decision || {};
  const route = (decision.route || []).map((s) => h('li', {},
    h('code', {text: `${s.kind}${s.target ? `:${s.target}` : ''}`}),
    s.timeout_s ? ` ring ${s.timeout_s} s; busy → ${s.on_busy}, no answer → ${s.on_no_answer}, unavailable → ${s.on_unavailable}` : ''));
  const reasons = (decision.reasons || []).map((r) => h('li', {},
    h('code', {class: 'rule', text: `[${r.rule}]`}), ' ', h('span', {text: r.text})));
  fill(out,
    h('div', {class: 'explain-grid'},
      h('div', {},
        h('h3', {text: 'Caller'}),
        facts([
          ['Number', data.number || 'unidentified'], ['As of', data.at], ['Class', data.class],
          ['Callback kind', data.callback_kind], ['Case holder', data.owner ? `${data.owner} (from ${data.owner_source})` : null],
          ['Why this holder', data.owner_why],
          ['Last contact', data.last_contact], ['History', data.history_status],
          ['CRM', crm.name ? `${crm.name} (${crm.client_id || '?'})` : data.crm_status], ['ABC', data.abc],
          ['Region', [data.country, data.region].filter(Boolean).join(' ') || null],
          ['Time zone', data.timezone ? `${data.timezone} (${data.timezone_source})` : null],
          ['Local time', data.local_time], ['Night', data.night === null ? null : (data.night ? 'yes' : 'no')],
          ['Company', company ? `${company.name}${company.parent ? ` (part of ${company.parent})` : ''}` : null],
        ])),
      h('div', {},
        h('h3', {text: 'Decision'}),
        facts([['Service', decision.service], ['Priority', decision.priority],
          ['Callback request', decision.callback_request ? 'yes' : 'no']]),
        h('h4', {text: 'Route'}), h('ol', {class: 'route', start: 0}, route),
        h('h4', {text: 'Why'}), h('ul', {id: 'explain-reasons', class: 'reasons'}, reasons))),
    h('details', {},
      h('summary', {text: 'JSON (as caseline explain --json)'}),
      h('pre', {id: 'explain-json', class: 'code', text: JSON.stringify(data, null, 1)})));
}

async function ask(event) {
  event.preventDefault();
  const number = form.querySelector('#explain-number').value.trim();
  const at = form.querySelector('#explain-at').value;  // company wall time, like --at without offset
  if (!number) return;
  fill(out, note('Asking…'));
  const answer = await api('GET', '/explain', {params: {number, at}});
  if (!answer.ok) {
    fill(out, note(errorText(answer), 'error'));
    return;
  }
  render(answer.data);
}

export function init(section) {
  form = h('form', {id: 'explain-form', class: 'filters', on: {submit: ask}},
    field('Number', h('input', {id: 'explain-number', type: 'search', required: true, placeholder: '+79161234567'})),
    field('At (company time; empty: now)', h('input', {id: 'explain-at', type: 'datetime-local', step: 60})),
    h('button', {type: 'submit', text: 'Explain'}));
  out = h('div', {id: 'explain-out'});
  fill(section, h('h2', {text: 'Explain a number'}), form, out);
}
