// The chat panel. Messages stay within the sender's space (main room or
// one consultation room); the server decides who receives them and
// journals each one.
import { t, roleLabel } from './i18n.js';
import { h, formatTime } from './dom.js';

const MAX_SHOWN = 500;

export function createChatPanel(room) {
  const log = h('ol', { class: 'chat-log', role: 'log', 'aria-live': 'polite', 'aria-label': t('chat.messages'), id: 'chat-log' });
  const empty = h('p', { class: 'muted chat-empty' }, t('chat.empty'));
  const el = h('section', { class: 'panel chat' }, h('h2', { class: 'panel-title' }, t('panel.chat')), empty, log);

  if (room.can('chat')) {
    const input = h('textarea', { id: 'chat-input', rows: 2, maxlength: 2000, 'aria-label': t('chat.message'), placeholder: t('chat.placeholder') });
    const form = h('form', { class: 'chat-form' }, input, h('button', { type: 'submit', class: 'btn btn-primary', id: 'chat-send' }, t('chat.send')));
    const send = () => {
      const text = input.value.trim();
      if (!text) return;
      room.conn.send('chat', { text });
      input.value = '';
    };
    form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey) {
        e.preventDefault();
        send();
      }
    });
    el.append(form);
  } else {
    el.append(h('p', { class: 'muted' }, t('chat.readOnly')));
  }

  room.addEventListener('chat', (e) => {
    const m = e.detail;
    empty.hidden = true;
    const mine = m.from === room.you.id;
    log.append(h('li', { class: 'chat-msg' + (mine ? ' mine' : '') },
      h('div', { class: 'chat-meta' },
        h('span', { class: 'chat-name' }, mine ? t('chat.you') : m.name),
        m.role && h('span', { class: 'chat-role' }, roleLabel(m.role)),
        h('time', { datetime: m.at }, formatTime(m.at))),
      h('div', { class: 'chat-text' }, m.text)));
    while (log.children.length > MAX_SHOWN) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
  });

  return { el, shown: () => { log.scrollTop = log.scrollHeight; } };
}
