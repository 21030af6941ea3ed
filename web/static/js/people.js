// The people panel: the waiting room with Admit, everyone in the main
// room and in consultation rooms, and — for the presiding role and the
// clerk — per-participant moderation and the session's controls
// (recording, closing).
import { t, roleLabel } from './i18n.js';
import { h, replace, confirmDialog, modal, announce } from './dom.js';
import { ROLES, OFFICIALS, inviteForm, invitedBox } from './invite.js';
import { invitableRoles } from './roles.js';
import { enforcedMute } from './store.js';

export function createPeoplePanel(room) {
  const el = h('section', { class: 'panel people' });
  const list = h('div', { class: 'people-list' });
  const controls = h('div', { class: 'session-controls' });
  el.append(h('h2', { class: 'panel-title' }, t('panel.people')), list, controls);

  const mod = (action) => room.can(action);

  function personRow(p) {
    const self = p.id === room.you.id;
    const flags = [];
    const st = room.state.statuses.get(p.id) || {};
    if (!p.connected) flags.push(t('people.offline'));
    if (p.audio_muted) flags.push(enforcedMute(p).audio || p.space === 'main' ? t('people.audioMuted') : t('people.audioMutedMain'));
    else if (st.mic_off) flags.push(t('room.micIsOff'));
    if (p.video_muted) flags.push(t('people.videoMuted'));
    if (p.interprets) flags.push(t('people.interprets', { name: room.nameOf(p.interprets).name }) + (p.whisper ? ' ' + t('people.whisper') : ''));
    const li = h('li', { class: 'person' + (p.connected ? '' : ' offline'), dataset: { participant: p.id } },
      h('span', { class: 'presence', 'aria-hidden': 'true' }),
      h('div', { class: 'person-main' },
        h('span', { class: 'person-name' }, st.hand && h('span', { class: 'hand-mark', title: t('hand.raised') }, '✋ ', h('span', { class: 'sr-only' }, t('hand.raised') + ': ')),
          p.name, self && ' ' + t('people.youSuffix')),
        h('span', { class: 'person-role' }, roleLabel(p.role)),
        flags.length > 0 && h('span', { class: 'person-flags' }, flags.join(' · '))));
    if (self || p.revoked) return li;
    const actions = h('div', { class: 'person-actions' });
    if (p.space === 'waiting' && mod('admit')) {
      actions.append(h('button', { type: 'button', class: 'btn btn-primary btn-small admit', 'aria-label': t('people.admitName', { name: p.name }),
        onclick: (e) => act(e.currentTarget, '/participants/' + p.id + '/admit', null, t('people.admitted', { name: p.name })) }, t('people.admit')));
    }
    const menu = moderationMenu(p);
    if (menu) actions.append(menu);
    if (actions.childNodes.length) li.append(actions);
    return li;
  }

  function moderationMenu(p) {
    const items = [];
    const item = (label, fn, danger) => items.push(h('button', { type: 'button', class: 'menu-item' + (danger ? ' danger' : ''), onclick: fn }, label));
    const path = '/participants/' + p.id;
    if (mod('mute') && p.role !== 'observer') {
      item(p.audio_muted ? t('people.allowAudio') : t('people.muteAudio'),
        () => act(null, path + '/mute', { audio: !p.audio_muted }, p.audio_muted ? t('people.audioAllowed', { name: p.name }) : t('people.audioMutedDone', { name: p.name })));
      item(p.video_muted ? t('people.allowVideo') : t('people.stopVideo'),
        () => act(null, path + '/mute', { video: !p.video_muted }, p.video_muted ? t('people.videoAllowed', { name: p.name }) : t('people.videoStoppedDone', { name: p.name })));
    }
    if (mod('move')) {
      if (p.space !== 'main') item(t('people.toMain'), () => act(null, path + '/move', { space: 'main' }, t('people.movedMain', { name: p.name })));
      if (p.space !== 'waiting') item(t('people.toWaiting'), () => act(null, path + '/move', { space: 'waiting' }, t('people.movedWaiting', { name: p.name })));
      for (const c of room.consultations.values()) {
        if (p.space !== c.id) item(t('people.toConsultation', { n: consultationNumber(c.id) }), () => act(null, path + '/move', { space: c.id }, t('people.movedConsultation', { name: p.name })));
      }
    }
    if (mod('consult') && p.space !== 'waiting') {
      item(t('people.newConsultation'), () => act(null, '/consultations', { participant_ids: [p.id] }, t('people.consultationOpened')));
    }
    if (mod('remove')) {
      item(t('people.remove'), async () => {
        if (await confirmDialog(t('people.removeTitle'), t('people.removeConfirm', { name: p.name }), t('people.remove'))) {
          act(null, path + '/remove', null, t('people.removed', { name: p.name }));
        }
      }, true);
    }
    if (!items.length) return null;
    // A disclosure: a native <details> is keyboard-usable as it is.
    const summary = h('summary', { class: 'btn btn-small', 'aria-label': t('people.actionsFor', { name: p.name }) }, t('people.actions'));
    const details = h('details', { class: 'menu' }, summary, h('div', { class: 'menu-list' }, items));
    details.addEventListener('click', (e) => { if (e.target.classList.contains('menu-item')) details.open = false; });
    details.addEventListener('keydown', (e) => { if (e.key === 'Escape') { details.open = false; summary.focus(); } });
    return details;
  }

  function consultationNumber(id) {
    return [...room.consultations.keys()].indexOf(id) + 1;
  }

  async function act(btn, path, body, done) {
    if (btn) btn.disabled = true;
    try {
      await room.moderate(path, body, done);
    } catch { /* room.moderate showed the error */ }
    if (btn) btn.disabled = false;
  }

  function render() {
    const all = [...room.participants.values()].filter((p) => !p.revoked);
    if (!all.find((p) => p.id === room.you.id)) all.push(room.you);
    const byName = (a, b) => a.name.localeCompare(b.name);
    const waiting = all.filter((p) => p.space === 'waiting' && p.connected).sort(byName);
    const main = all.filter((p) => p.space === 'main').sort(byName);
    const invited = all.filter((p) => p.space === 'waiting' && !p.connected).sort(byName);
    const sections = [];
    const hands = main.filter((p) => (room.state.statuses.get(p.id) || {}).hand);
    if (hands.length) {
      sections.push(h('section', { class: 'people-section hands-list', 'aria-labelledby': 'hands-list-h' },
        h('h3', { id: 'hands-list-h' }, t('hand.list', { n: hands.length })),
        h('ul', null, hands.map((p) => h('li', { class: 'hand-row', dataset: { participant: p.id } }, '✋ ', p.name, ' · ', roleLabel(p.role))))));
    }
    if (mod('admit') || waiting.length) {
      sections.push(h('section', { class: 'people-section waiting-list', 'aria-labelledby': 'waiting-list-h' },
        h('div', { class: 'section-head' },
          h('h3', { id: 'waiting-list-h' }, t('people.waiting', { n: waiting.length })),
          mod('admit') && waiting.length > 1 && h('button', { type: 'button', class: 'btn btn-small btn-primary', id: 'admit-all',
            onclick: (e) => admitAll(e.currentTarget, waiting) }, t('people.admitAll', { n: waiting.length }))),
        waiting.length ? h('ul', null, waiting.map(personRow)) : h('p', { class: 'muted' }, t('people.nobodyWaiting'))));
    }
    sections.push(h('section', { class: 'people-section', 'aria-labelledby': 'main-list-h' },
      h('h3', { id: 'main-list-h' }, t('people.inRoom', { n: main.filter((p) => p.connected).length })),
      h('ul', null, main.map(personRow))));
    let n = 0;
    for (const c of room.consultations.values()) {
      n++;
      const members = all.filter((p) => p.space === c.id).sort(byName);
      sections.push(h('section', { class: 'people-section' },
        h('h3', null, t('people.consultation', { n })),
        h('ul', null, members.map(personRow)),
        mod('consult') && h('button', { type: 'button', class: 'btn btn-small', onclick: () => act(null, '/consultations/' + c.id + '/close', null, t('people.consultationClosed')) }, t('people.closeConsultation'))));
    }
    if (invited.length && mod('admit')) {
      sections.push(h('section', { class: 'people-section' }, h('h3', null, t('people.notArrived', { n: invited.length })), h('ul', null, invited.map(personRow))));
    }
    replace(list, sections);
    renderControls();
  }

  /** admitAll admits everyone waiting, one request each (the server checks each). */
  async function admitAll(btn, waiting) {
    btn.disabled = true;
    let n = 0;
    for (const p of waiting) {
      try {
        await room.moderate('/participants/' + p.id + '/admit', null);
        n++;
      } catch { /* room.moderate showed the error */ }
    }
    announce(t('people.admittedAll', { n }));
    btn.disabled = false;
  }

  function renderControls() {
    const items = [];
    if (mod('record')) {
      const on = room.recording.recording;
      items.push(h('button', { type: 'button', class: 'btn ' + (on ? 'btn-danger' : ''), id: 'recording-button', 'aria-pressed': String(on),
        onclick: () => room.setRecordingOn(!on) }, on ? t('recording.stop') : t('recording.start')));
    }
    if (mod('invite')) {
      items.push(h('button', { type: 'button', class: 'btn', id: 'room-invite', onclick: () => invite() }, t('people.invite')));
    }
    if (mod('close')) {
      items.push(h('button', { type: 'button', class: 'btn btn-danger', id: 'close-session', onclick: () => room.closeSession() }, t('session.close')));
    }
    replace(controls, items.length ? [h('h3', null, t('session.controls')), h('div', { class: 'actions' }, items)] : []);
  }

  async function invite() {
    const out = h('div', { class: 'invite-result', role: 'status' });
    await modal(t('people.invite'), (close) => h('div', null,
      // Officials are assigned from the console, never invited: the list
      // has the people a hearing or an act adds as it goes.
      inviteForm({ api: room.api, session: room.session, roles: invitableRoles(ROLES[room.session.kind], OFFICIALS),
        onInvited: (inv) => replace(out, invitedBox(inv)) }),
      out,
      h('div', { class: 'actions' }, h('button', { type: 'button', class: 'btn', onclick: () => close() }, t('common.close')))));
  }

  room.addEventListener('participants', render);
  room.addEventListener('recording', renderControls);
  room.addEventListener('session', render);
  render();
  return { el, shown: render };
}
