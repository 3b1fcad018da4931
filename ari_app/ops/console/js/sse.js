// Server-sent events over fetch(): EventSource cannot send an Authorization header, and the
// token must not travel in the URL (it would land in logs and history). So the stream is
// read with a ReadableStream reader and parsed here (the text/event-stream format:
// "event:" and "data:" lines, a blank line ends an event). The stream reconnects with
// backoff; the server starts each connection with a full snapshot, so nothing is missed.

import {authHeaders} from './api.js';

function parseBlock(block) {
  let type = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;  // a comment: keepalive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') type = value;
    else if (field === 'data') data.push(value);
  }
  return data.length ? {type, data: data.join('\n')} : null;
}

// onEvent(type, parsedJson); onState('live' | 'reconnecting' | 'unauthorized' | 'busy').
// Returns stop().
export function subscribe(path, onEvent, onState) {
  let stopped = false;
  let controller = null;
  let retry = null;

  async function once() {
    controller = new AbortController();
    const response = await fetch(path, {
      headers: authHeaders({Accept: 'text/event-stream'}), signal: controller.signal,
      cache: 'no-store', credentials: 'omit',
    });
    if (response.status === 401 || response.status === 403) return 'unauthorized';
    if (!response.ok || !response.body) return response.status === 503 ? 'busy' : 'error';
    onState('live');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return 'ended';
      buffer += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) {
          let data;
          try { data = JSON.parse(event.data); } catch { continue; }
          onEvent(event.type, data);
        }
      }
    }
  }

  async function run() {
    let delay = 500;
    while (!stopped) {
      let result;
      try {
        result = await once();
      } catch {
        result = 'error';
      }
      if (stopped) return;
      if (result === 'unauthorized') { onState('unauthorized'); return; }
      onState(result === 'busy' ? 'busy' : 'reconnecting');
      if (result === 'ended') delay = 500;  // the server closed it (dropped as too slow): at once
      await new Promise((resolve) => { retry = setTimeout(resolve, delay); });
      delay = Math.min(delay * 2, 10000);
    }
  }

  run();
  return () => {
    stopped = true;
    clearTimeout(retry);
    if (controller) controller.abort();
  };
}
