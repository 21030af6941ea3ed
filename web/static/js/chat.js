// The chat panel. Messages stay within the sender's space (main room or
// one consultation room); the server decides who receives them and
// journals each one. The list keeps both, each labelled with the room it
// was said in, so a private word in a consultation is never mistaken for
// one the court heard.
import { t, roleLabel } from './i18n.js';
import { h, formatTime } from './dom.js';
import { MAIN } from './store.js';

export function createChatPanel(room) {
  const log = h('ol', { class: 'chat-log', role: 'log', 'aria-live': 'polite', 'aria-label': t('chat.messages'), id: 'chat-log', tabindex: '0' });
  const empty = h('p', { class: 'muted chat-empty' }, t('chat.empty'));
  const where = h('p', { class: 'chat-where', id: 'chat-where' });
  const el = h('section', { class: 'panel chat' }, h('h2', { class: 'panel-title' }, t('panel.chat')), empty, log);

  if (room.can('chat')) {
    const input = h('textarea', { id: 'chat-input', rows: 2, maxlength: 2000, 'aria-label': t('chat.message'), 'aria-describedby': 'chat-where', placeholder: t('chat.placeholder') });
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
    el.append(where, form);
  } else {
    el.append(h('p', { class: 'muted' }, t('chat.readOnly')));
  }

  let last = 0; // seq of the newest message shown
  function render(list) {
    // Messages only arrive at the end (seq rises); the store keeps the last 500.
    for (const m of list) if (m.seq > last) log.append(message(m));
    if (list.length) last = list[list.length - 1].seq;
    while (log.children.length > list.length) log.firstChild.remove();
    empty.hidden = list.length > 0;
    log.scrollTop = log.scrollHeight;
  }

  function message(m) {
    const mine = m.from === room.you.id;
    const priv = (m.space || MAIN) !== MAIN;
    return h('li', { class: 'chat-msg' + (mine ? ' mine' : '') + (priv ? ' private' : ''), dataset: { space: priv ? 'consultation' : 'main', at: m.at } },
      h('div', { class: 'chat-meta' },
        h('span', { class: 'chat-room' + (priv ? ' chat-room-private' : '') }, priv ? t('chat.consultation') : t('chat.mainRoom')),
        h('span', { class: 'chat-name' }, mine ? t('chat.you') : m.name),
        m.role && h('span', { class: 'chat-role' }, roleLabel(m.role)),
        h('time', { datetime: m.at }, formatTime(m.at))),
      h('div', { class: 'chat-text' }, m.text));
  }

  function whereNow() {
    const priv = (room.you.space || MAIN) !== MAIN;
    where.textContent = priv ? t('chat.sendsToConsultation') : t('chat.sendsToMain');
    where.classList.toggle('private', priv);
  }

  room.addEventListener('chat', (e) => render(e.detail));
  room.addEventListener('participants', whereNow);
  whereNow();
  return { el, shown: () => { log.scrollTop = log.scrollHeight; } };
}
