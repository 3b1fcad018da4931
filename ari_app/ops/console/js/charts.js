// Pictures of the last day (GET /stats, counted server-side from the decision log), drawn
// with the vendored uPlot (vendor/uPlot.iife.min.js: a small canvas charting library with
// time axes, a legend and a hover read-out; it sets no inline style attributes, so it works
// under the console's Content-Security-Policy).

import {h, fill, note, table} from './dom.js';
import {api, errorText} from './api.js';

const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
let out;
let hoursInput;
let charts = [];

function series(label, i) {
  const stroke = COLORS[i % COLORS.length];
  return {label, stroke, width: 2, points: {show: true, size: 4}, paths: window.uPlot.paths.stepped({align: 1})};
}

function chart(title, id, xs, named) {
  const box = h('div', {class: 'chart', id});
  const names = Object.keys(named);
  const wrap = h('figure', {class: 'chart-figure'}, h('figcaption', {text: title}), box);
  out.append(wrap);
  if (!names.length) {
    box.append(note('No calls in this period.', 'empty'));
    return;
  }
  if (!window.uPlot) {  // the library did not load: the numbers as a table
    box.append(table(['Hour', ...names], xs.map((x, i) => h('tr', {},
      h('td', {text: new Date(x * 1000).toLocaleString()}), names.map((n) => h('td', {class: 'num', text: named[n][i]}))))));
    return;
  }
  const width = Math.max(320, (out.clientWidth || 900) - 16);
  const opts = {
    width, height: 220,
    scales: {x: {time: true}, y: {range: (u, min, max) => [0, Math.max(1, max)]}},
    axes: [{}, {label: 'calls / hour', values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? t : ''))}],
    series: [{}, ...names.map(series)],
  };
  charts.push(new window.uPlot(opts, [xs, ...names.map((n) => named[n])], box));
}

async function load() {
  for (const c of charts) c.destroy();
  charts = [];
  fill(out, note('Loading…'));
  const answer = await api('GET', '/stats', {params: {hours: hoursInput.value}});
  if (!answer.ok) {
    fill(out, note(errorText(answer), 'error'));
    return;
  }
  const s = answer.data;
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  fill(out, h('p', {id: 'stats-summary', class: 'summary'},
    `${s.total} calls since ${new Date(s.since).toLocaleString()}: `,
    `${sum(s.fallbacks)} with fallbacks, ${sum(s.sheds)} shed to the dialplan, ${sum(s.degraded)} decided with a source down.`));
  chart('Calls per hour by class', 'chart-class', s.hours, s.by_class);
  chart('Calls per hour by service', 'chart-service', s.hours, s.by_service);
  chart('Fallbacks and sheds per hour', 'chart-trouble', s.hours, s.total
    ? {fallbacks: s.fallbacks, sheds: s.sheds, degraded: s.degraded} : {});
}

export function init(section) {
  out = h('div', {id: 'charts-out'});
  hoursInput = h('input', {id: 'stats-hours', type: 'number', min: 1, max: 168, value: 24});
  fill(section, h('h2', {text: 'Charts'}),
    h('form', {class: 'filters', on: {submit: (e) => { e.preventDefault(); load(); }}},
      h('label', {class: 'field'}, h('span', {text: 'Last (hours)'}), hoursInput),
      h('button', {type: 'submit', text: 'Show'})),
    out);
}

export function activate() {
  load();
}
