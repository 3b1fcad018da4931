// The console: sign in with the ops token, then tabs over the ops API's data routes.

import {token, api, UNAUTHORIZED} from './api.js';
import * as live from './live.js';
import * as decisions from './decisions.js';
import * as explain from './explain.js';
import * as routing from './routing.js';
import * as callbacks from './callbacks.js';
import * as charts from './charts.js';

const PANELS = {live, decisions, explain, routing, callbacks, charts};
const $ = (id) => document.getElementById(id);

function show(name) {
  for (const [tab, panel] of Object.entries(PANELS)) {
    $(`tab-${tab}`).hidden = tab !== name;
    const button = document.querySelector(`#tabs [data-tab="${tab}"]`);
    button.setAttribute('aria-selected', String(tab === name));
    if (tab === name && panel.activate) panel.activate();
  }
}

function signedIn(yes) {
  $('signin').hidden = yes;
  $('tabs').hidden = !yes;
  $('sign-out').hidden = !yes;
  if (!yes) for (const tab of Object.keys(PANELS)) $(`tab-${tab}`).hidden = true;
}

function enter() {
  signedIn(true);
  live.start();
  show('live');
}

function signOut(message) {
  token.clear();
  live.halt();
  decisions.reset();
  signedIn(false);
  $('signin-error').textContent = message || '';
  $('token').value = '';
  $('token').focus();
}

async function verify() {
  // any protected route tells whether the token is good; /calls is the cheapest
  const answer = await api('GET', '/calls');
  if (answer.ok) return '';
  if (answer.status === 401) return 'The ops API refused this token.';
  if (answer.status === 403) return 'This Caseline has no ops token configured (CASELINE_OPS_TOKEN).';
  return answer.data.error || `The ops API answered HTTP ${answer.status}.`;
}

async function signIn(event) {
  event.preventDefault();
  const value = $('token').value.trim();
  if (!value) return;
  token.set(value);
  const problem = await verify();
  if (problem) signOut(problem);
  else enter();
}

function start() {
  for (const [tab, panel] of Object.entries(PANELS)) panel.init($(`tab-${tab}`));
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', () => signOut('Signed out.'));
  for (const button of document.querySelectorAll('#tabs [data-tab]')) {
    button.addEventListener('click', () => show(button.dataset.tab));
  }
  window.addEventListener(UNAUTHORIZED, () => signOut('The ops API refused the token: sign in again.'));
  if (token.get()) {
    verify().then((problem) => (problem ? signOut(problem) : enter()));
  } else {
    signedIn(false);
  }
}

start();
