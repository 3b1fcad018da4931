// Building the page from data: every value becomes a text node or an attribute set with
// setAttribute; nothing in the console hands a string to the HTML parser, so a caller
// name like <img src=x onerror=alert(1)> is shown as those characters.

const FORBIDDEN_ATTRS = /^(on|style$|srcdoc$)/i;

// h('td', {class: 'num', data: {callId: id}, on: {click: fn}}, 'text', node, [more])
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = String(value);
    else if (key === 'on') for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    else if (key === 'data') for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    else if (key === 'hidden') el.hidden = true;
    else if (key === 'disabled') el.disabled = true;
    else if (key === 'checked') el.checked = true;
    else if (key === 'value') el.value = String(value);
    else if (FORBIDDEN_ATTRS.test(key)) throw new Error(`attribute ${key} is not allowed`);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A <select> of [value, label] pairs; the first is the default.
export function select(id, options) {
  return h('select', {id, name: id}, options.map(([value, label]) => h('option', {value, text: label})));
}

export function field(label, control) {
  return h('label', {class: 'field'}, h('span', {text: label}), control);
}

export function table(headers, rows, props) {
  return h('table', props || {},
    h('thead', {}, h('tr', {}, headers.map((title) => h('th', {scope: 'col', text: title})))),
    h('tbody', {}, rows));
}

export function note(text, kind) {
  return h('p', {class: `note ${kind || ''}`.trim(), text});
}

export function duration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const m = Math.floor(s / 60);
  const pad = (n) => String(n).padStart(2, '0');
  return m >= 60 ? `${Math.floor(m / 60)}:${pad(m % 60)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function localTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso || '') : d.toLocaleString();
}
