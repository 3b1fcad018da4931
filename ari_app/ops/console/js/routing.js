// Routing: the running routing.yaml; a candidate pasted or uploaded; its problems with line
// and key (POST /routing/check); the replay of the last hours under it (POST /replay); and
// apply (POST /routing/apply: the same validated atomic reload as `caseline reload`).

import {h, fill, field, note, table} from './dom.js';
import {api, errorText} from './api.js';

const YAML = 'application/yaml';
let running;
let runningNote;
let candidate;
let hours;
let problemsOut;
let replayOut;
let applyOut;
let confirmBox;

async function loadRunning() {
  const answer = await api('GET', '/routing');
  if (!answer.ok) {
    running.textContent = '';
    fill(runningNote, errorText(answer));
    return null;
  }
  running.textContent = answer.data.text;
  fill(runningNote, `${answer.data.file}, as on disk`,
    answer.data.changed_since_reload ? ' (changed since the last reload: not what runs)' : ' (running)');
  return answer.data.text;
}

function excerpt(text, line) {
  const lines = text.split('\n');
  const from = Math.max(1, line - 2);
  const to = Math.min(lines.length, line + 2);
  const rows = [];
  for (let n = from; n <= to; n += 1) {
    rows.push(h('span', {class: n === line ? 'line bad' : 'line', data: {line: n}},
      h('span', {class: 'ln', text: String(n)}), lines[n - 1] ?? ''));
  }
  return h('pre', {class: 'code excerpt'}, rows);
}

function showProblems(problems) {
  if (!problems.length) {
    fill(problemsOut, note('Valid: no problems found.', 'ok'));
    return;
  }
  const text = candidate.value;
  fill(problemsOut,
    note(`${problems.length} problem${problems.length === 1 ? '' : 's'}: the candidate is refused.`, 'error'),
    h('ul', {id: 'routing-problem-list', class: 'problems'}, problems.map((p) => h('li', {class: 'problem', data: {line: p.line ?? ''}},
      h('strong', {text: p.line ? `line ${p.line}` : 'file'}), ' · ',
      h('code', {text: p.key || '<top level>'}), ' · ',
      h('span', {text: p.reason || p.error}),
      p.line ? excerpt(text, p.line) : null))));
}

async function check() {
  fill(problemsOut, note('Checking…'));
  const answer = await api('POST', '/routing/check', {body: candidate.value, contentType: YAML});
  if (!answer.ok) {
    fill(problemsOut, note(errorText(answer), 'error'));
    return false;
  }
  showProblems(answer.data.problems || []);
  return answer.data.ok;
}

function routing(r) {
  return `${r.service} ${r.first_target} prio ${r.priority}`;
}

async function replay() {
  fill(replayOut, note('Replaying…'));
  const answer = await api('POST', '/replay', {body: candidate.value, contentType: YAML,
    params: {since: `${Math.max(1, Number(hours.value) || 24)}h`}});
  if (!answer.ok) {
    const d = answer.data || {};
    fill(replayOut, note('The candidate cannot be replayed:', 'error'));
    if (d.reason) showProblems([d]);
    else replayOut.append(note(errorText(answer), 'error'));
    return;
  }
  const r = answer.data;
  const changes = r.changes || [];
  fill(replayOut,
    h('p', {id: 'replay-summary', class: 'summary'},
      h('strong', {text: `${r.changed} of ${r.replayed}`}),
      ` replayed calls would be routed differently (${r.calls} calls since ${new Date(r.since).toLocaleString()}`,
      r.without_profile ? `, ${r.without_profile} without a stored profile` : '', ').'),
    changes.length ? table(['Calls', 'Now', 'Under the candidate', 'Examples'], changes.map((c) => h('tr', {},
      h('td', {class: 'num', text: c.count}),
      h('td', {text: routing(c.from)}),
      h('td', {text: routing(c.to)}),
      h('td', {class: 'examples', text: (c.examples || []).join(', ')}))), {id: 'replay-changes', class: 'grid'})
      : note('No call would change.', 'ok'));
}

function askApply() {
  confirmBox.hidden = false;
  fill(applyOut);
}

async function apply() {
  confirmBox.hidden = true;
  fill(applyOut, note('Applying…'));
  const answer = await api('POST', '/routing/apply', {body: candidate.value, contentType: YAML});
  if (answer.ok) {
    fill(applyOut, note('Applied: routing.yaml replaced and reloaded; new calls route with it.', 'ok'));
    fill(problemsOut);
    await loadRunning();
    return;
  }
  const d = answer.data || {};
  fill(applyOut, note(`Refused: ${d.problems ? 'the candidate is invalid' : errorText(answer)}; the running config is unchanged.`, 'error'));
  if (d.problems) showProblems(d.problems);
}

function clearResults() {  // they were about another text
  for (const out of [problemsOut, replayOut, applyOut]) fill(out);
  confirmBox.hidden = true;
}

async function upload(event) {
  const file = event.target.files[0];
  if (file) {
    candidate.value = await file.text();
    candidate.dispatchEvent(new Event('input'));
  }
}

export function init(section) {
  running = h('pre', {id: 'routing-running', class: 'code running'});
  runningNote = h('p', {class: 'note'});
  candidate = h('textarea', {id: 'candidate', spellcheck: 'false', rows: 18,
    placeholder: 'Paste a candidate routing.yaml here, or upload one, or copy the running one.',
    on: {input: clearResults}});
  hours = h('input', {id: 'replay-hours', type: 'number', min: 1, max: 720, value: 24});
  problemsOut = h('div', {id: 'routing-problems'});
  replayOut = h('div', {id: 'routing-replay-out'});
  applyOut = h('div', {id: 'routing-apply-out'});
  confirmBox = h('div', {id: 'apply-confirm', class: 'confirm', hidden: true},
    h('span', {text: 'Replace routing.yaml with the candidate and reload it now? '}),
    h('button', {type: 'button', id: 'apply-yes', class: 'danger', text: 'Apply now', on: {click: apply}}),
    h('button', {type: 'button', class: 'quiet', text: 'Cancel', on: {click: () => { confirmBox.hidden = true; }}}));
  fill(section,
    h('h2', {text: 'Routing'}),
    h('div', {class: 'routing-grid'},
      h('div', {},
        h('h3', {text: 'Running'}), runningNote, running,
        h('button', {type: 'button', id: 'copy-running', class: 'quiet', text: 'Copy into the candidate',
          on: {click: () => { candidate.value = running.textContent; candidate.dispatchEvent(new Event('input')); }}})),
      h('div', {},
        h('h3', {text: 'Candidate'}), candidate,
        h('div', {class: 'actions'},
          field('Upload', h('input', {type: 'file', id: 'candidate-file', accept: '.yaml,.yml,text/yaml', on: {change: upload}})),
          h('button', {type: 'button', id: 'routing-check', text: 'Check', on: {click: check}}),
          field('Replay the last (hours)', hours),
          h('button', {type: 'button', id: 'routing-replay', text: 'Replay', on: {click: replay}}),
          h('button', {type: 'button', id: 'routing-apply', class: 'danger', text: 'Apply…', on: {click: askApply}})),
        confirmBox, applyOut, problemsOut, replayOut)));
}

export function activate() {
  loadRunning();
}
