// The room's state and the one function that changes it. reduce takes the
// state and an action (a server message, the connection's news, a local
// change) and returns the next state with the effects the views should
// show once (a toast, an announcement, the end of the room). It touches
// neither the DOM nor the network, so it runs under node as well
// (web/jstest/store.test.mjs); the views (room.js, tiles.js, stage.js and
// the panels) render from the state it returns.

/** Spaces a participant can be in besides a consultation room's id. */
export const MAIN = 'main';
export const WAITING = 'waiting';

const MAX_CHAT = 500;

/**
 * initial builds the state before the signalling connection is up, from
 * what the join page learnt through the API (GET /me and the session).
 */
export function initial({ you, permissions = [], session = {} }) {
  return {
    you: Object.assign({ space: WAITING }, you),
    perms: new Set(permissions),
    session: Object.assign({}, session),
    participants: new Map(), // id → participant (as the API names them)
    peers: new Map(), // connection id → {id, name, role}: the signalling layer's peers
    consultations: new Map(), // id → consultation
    recording: { recording: false },
    presenting: null, // {document_id, page, by} while a document is shown
    speaker: '',
    statuses: new Map(), // participant id → {hand, mic_off} they told the space
    chat: [], // {from, name, role, text, at, space}
    connection: { state: 'connecting', attempt: 0 },
    ended: null, // {kind: left|removed|closed|refused, reason}
  };
}

/** view is 'waiting' or 'room', by the participant's space. */
export function viewOf(state) {
  return (state.you.space || MAIN) === WAITING ? 'waiting' : 'room';
}

/** inConsultation reports whether the participant is in a consultation room. */
export function inConsultation(state) {
  const s = state.you.space || MAIN;
  return s !== MAIN && s !== WAITING;
}

/**
 * enforcedMute is what the server stops of this participant right now: a
 * mute set by the presiding role holds in the main room only; a
 * consultation room is private and its people hear each other.
 */
export function enforcedMute(p) {
  const main = (p.space || MAIN) === MAIN;
  return { audio: main && !!p.audio_muted, video: main && !!p.video_muted };
}

/** nameOf returns a participant's {name, role}, from whatever knows it (null: nobody). */
export function nameOf(state, id) {
  if (id === state.you.id) return state.you;
  const p = state.participants.get(id);
  if (p) return p;
  for (const peer of state.peers.values()) if (peer.id === id) return peer;
  return null;
}

/**
 * people is everyone in this participant's space who is connected (or
 * known to be here), for a tile each: the participant first known from
 * the participants list, else from the signalling peers.
 */
export function peopleHere(state) {
  const space = state.you.space || MAIN;
  const out = new Map();
  // The server sends each receiver only the participants it may know of
  // (an observer: who is on stage), so the list is the truth for everyone.
  for (const p of state.participants.values()) {
    if (p.revoked || !p.connected || (p.space || MAIN) !== space) continue;
    out.set(p.id, p);
  }
  if (!state.perms.has('see_participants') && out.size === 0) {
    // A server that sends no participant records: the signalling layer's
    // peers (the connections this participant is told of) get a tile each.
    for (const p of state.peers.values()) if (p.id !== state.you.id) out.set(p.id, p);
  }
  if (space !== WAITING) out.set(state.you.id, state.you);
  return [...out.values()];
}

function withMap(map, id, value) {
  const m = new Map(map);
  if (value === undefined) m.delete(id);
  else m.set(id, value);
  return m;
}

/** hands lists the participants of the space with a raised hand, in the order they have them. */
export function hands(state) {
  return [...state.statuses].filter(([, st]) => st.hand).map(([id]) => id);
}

/** reduce returns {state, effects} for one action. */
export function reduce(state, action) {
  const effects = [];
  const next = step(state, action, effects);
  return { state: next, effects };
}

function step(state, action, fx) {
  if (state.ended && action.type !== 'end') return state;
  switch (action.type) {
    case 'joined': return joined(state, action, fx);
    case 'connection': return connection(state, action, fx);
    case 'message': return message(state, action.msg, action.data || {}, fx);
    case 'closed': return closed(state, action, fx);
    case 'end': return end(state, action.kind, action.reason, fx);
    default: return state;
  }
}

function connection(state, { state: st, attempt = 0 }, fx) {
  if (st === 'connected' && state.connection.state === 'reconnecting') fx.push({ type: 'announce', key: 'room.reconnected' });
  return Object.assign({}, state, { connection: { state: st, attempt } });
}

function joined(state, { joined: j = {}, welcome, rejoin }, fx) {
  let s = Object.assign({}, state);
  // A new connection is told every peer again.
  s.peers = new Map((j.peers || []).map((p) => [p.connection_id, p.participant]));
  if (welcome) s = welcomed(s, welcome, fx, true);
  if (rejoin) fx.push({ type: 'announce', key: 'room.reconnected' });
  fx.push({ type: 'rejoined' });
  return s;
}

/**
 * welcomed applies the session layer's welcome: in "joined", or sent again
 * ("welcome") when the session changed while the connection joined — an
 * admission made as the participant arrived, which is then announced.
 */
function welcomed(state, welcome, fx, initial) {
  let s = Object.assign({}, state);
  s.session = Object.assign({}, s.session, welcome.session, { act: welcome.act !== undefined ? welcome.act : s.session.act });
  if (welcome.permissions) s.perms = new Set(welcome.permissions);
  if (welcome.participants) s.participants = new Map(welcome.participants.map((p) => [p.id, p]));
  s.statuses = new Map(Object.entries(welcome.statuses || {}));
  s = setRecording(s, welcome.recording, fx);
  s = setYou(s, welcome.you || s.you, fx, initial);
  // Someone who joins mid-presentation sees the page being shown.
  const pr = welcome.presenting;
  s.presenting = pr && pr.document_id && (s.you.space || MAIN) === MAIN ? pr : null;
  return s;
}

/** setYou applies this participant's new record: space, mutes. */
function setYou(state, you, fx, initial = false) {
  const before = state.you;
  const s = Object.assign({}, state, { you: Object.assign({}, before, you) });
  const was = viewOf(state);
  const now = viewOf(s);
  if (now === 'waiting' && (was !== 'waiting' || initial)) fx.push({ type: 'announce', key: 'waiting.title' });
  if (now === 'room' && was === 'waiting' && !initial) fx.push({ type: 'announce', key: 'room.admitted' });
  const m0 = enforcedMute(before);
  const m1 = enforcedMute(s.you);
  if (!initial) {
    if (m1.audio && !m0.audio) fx.push({ type: 'toast', key: 'room.youWereMuted' });
    if (m1.video && !m0.video) fx.push({ type: 'toast', key: 'room.yourVideoStopped' });
    if (!m1.audio && m0.audio) fx.push({ type: 'toast', key: inConsultation(s) ? 'room.consultationUnmuted' : 'room.youMayUnmute' });
  }
  // A presentation is for the main room: leaving it hides the stage.
  if ((s.you.space || MAIN) !== MAIN) s.presenting = null;
  return s;
}

/**
 * recordingState says what the room shows of its recording: 'recording',
 * 'storage_pending' (stopped, and waiting for the evidence store or the
 * database to store it: the server retries until it has) or 'off'.
 */
export function recordingState(rec) {
  if (rec && rec.recording) return 'recording';
  if (rec && rec.storage_pending) return 'storage_pending';
  return 'off';
}

function setRecording(state, rec, fx) {
  const on = !!(rec && rec.recording);
  if (on !== !!state.recording.recording) fx.push({ type: 'announce', key: on ? 'room.recordingStarted' : 'room.recordingStopped', assertive: true });
  if (recordingState(rec) === 'storage_pending' && recordingState(state.recording) !== 'storage_pending') {
    fx.push({ type: 'announce', key: 'recording.storagePending' });
  }
  return Object.assign({}, state, { recording: rec || { recording: false } });
}

function message(state, type, data, fx) {
  switch (type) {
    case 'welcome': return welcomed(state, data, fx, false);
    case 'participant_added':
    case 'participant_updated': {
      const p = Object.assign({}, state.participants.get(data.id), data);
      let s = Object.assign({}, state, { participants: withMap(state.participants, data.id, p) });
      if (data.id === state.you.id) s = setYou(s, data, fx);
      else if (type === 'participant_updated' && data.space === WAITING && data.connected && state.perms.has('admit')) {
        const old = state.participants.get(data.id);
        if (!old || old.space !== WAITING || !old.connected) {
          fx.push({ type: 'badge', panel: 'people' });
          fx.push({ type: 'toast', key: 'people.isWaiting', params: { name: data.name } });
        }
      }
      // A status is for the space it was said in: leaving drops it.
      if (p.space !== state.you.space || !p.connected) s.statuses = withMap(s.statuses, p.id);
      return s;
    }
    case 'participants': {
      // Whom this participant may know of now that their space changed
      // (admitted, moved): the whole list, replacing the one they had.
      if (data.for && data.for !== state.you.id) return state;
      const participants = new Map();
      for (const p of data.participants || []) participants.set(p.id, p);
      if (!participants.has(state.you.id)) participants.set(state.you.id, state.participants.get(state.you.id) || state.you);
      const statuses = new Map([...state.statuses].filter(([id]) => participants.has(id)));
      return Object.assign({}, state, { participants, statuses });
    }
    case 'participant_removed': {
      const id = data.participant_id;
      if (id === state.you.id) return end(state, 'removed', '', fx);
      return Object.assign({}, state, { participants: withMap(state.participants, id), statuses: withMap(state.statuses, id) });
    }
    case 'session_updated':
      return Object.assign({}, state, { session: Object.assign({}, state.session, data) });
    case 'session_closed':
      return end(Object.assign({}, state, { session: Object.assign({}, state.session, data) }), 'closed', '', fx);
    case 'consultation_opened':
      return Object.assign({}, state, { consultations: withMap(state.consultations, data.id, data) });
    case 'consultation_closed':
      return Object.assign({}, state, { consultations: withMap(state.consultations, data.consultation_id) });
    case 'peer_joined':
      return Object.assign({}, state, { peers: withMap(state.peers, data.connection_id, data.participant) });
    case 'peer_left':
      return Object.assign({}, state, { peers: withMap(state.peers, data.connection_id) });
    case 'chat': {
      const seq = state.chat.length ? state.chat[state.chat.length - 1].seq + 1 : 1;
      const chat = state.chat.concat([Object.assign({ space: MAIN }, data, { seq })]);
      if (chat.length > MAX_CHAT) chat.splice(0, chat.length - MAX_CHAT);
      fx.push({ type: 'badge', panel: 'chat' });
      return Object.assign({}, state, { chat });
    }
    case 'present': return present(state, data, fx);
    case 'status': {
      const id = data.participant_id;
      const was = state.statuses.get(id) || {};
      if (data.hand && !was.hand && id !== state.you.id) {
        const who = nameOf(state, id);
        fx.push({ type: 'toast', key: 'hand.raisedBy', params: { name: who ? who.name : '' } });
        fx.push({ type: 'badge', panel: 'people' });
      }
      const st = { hand: !!data.hand, mic_off: !!data.mic_off };
      return Object.assign({}, state, { statuses: withMap(state.statuses, id, st.hand || st.mic_off ? st : undefined) });
    }
    case 'recording': return setRecording(state, data, fx);
    case 'active_speaker':
      return data.participant_id === state.speaker ? state : Object.assign({}, state, { speaker: data.participant_id });
    case 'act_updated':
      fx.push({ type: 'badge', panel: 'act' });
      fx.push({ type: 'event', name: 'act_updated', data });
      return Object.assign({}, state, { session: Object.assign({}, state.session, { act: data }) });
    case 'identity_check':
      fx.push({ type: 'badge', panel: 'act' });
      fx.push({ type: 'event', name: 'identity_check', data });
      return state;
    case 'error':
      if (data.code !== 'rate_limited') fx.push({ type: 'error', code: data.code, message: data.message });
      return state;
    default:
      // Messages the store keeps nothing of (documents_changed, still
      // requests, …) go to whoever listens.
      fx.push({ type: 'event', name: type, data });
      return state;
  }
}

function present(state, data, fx) {
  if ((state.you.space || MAIN) !== MAIN) return state;
  if (!data.document_id) {
    if (state.presenting) fx.push({ type: 'announce', key: 'present.stopped' });
    return Object.assign({}, state, { presenting: null });
  }
  const first = !state.presenting || state.presenting.document_id !== data.document_id;
  if (first) {
    const who = nameOf(state, data.by);
    fx.push({ type: 'announce', key: 'present.started', params: { name: who ? who.name : '' } });
  }
  return Object.assign({}, state, { presenting: Object.assign({}, data) });
}

// Bye and join-refusal codes that end the room for good.
const ENDINGS = { session_closed: 'closed', removed: 'removed', token_revoked: 'removed' };

function closed(state, { code, reason }, fx) {
  if (code === 'left' || reason === 'left') return end(state, 'left', '', fx);
  if (ENDINGS[code]) return end(state, ENDINGS[code], '', fx);
  // Expired or refused: the room asks the API why and ends with 'check'.
  fx.push({ type: 'check', code, reason });
  return state;
}

function end(state, kind, reason, fx) {
  if (state.ended) return state;
  fx.push({ type: 'end', kind, reason: reason || '' });
  return Object.assign({}, state, { ended: { kind, reason: reason || '' }, presenting: null });
}
