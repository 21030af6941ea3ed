// Names as people read them: initials for an avatar, and whether the name
// someone was invited under is the name on their identity document. No
// DOM here: node runs its tests (jstest/names.test.mjs).

/** initials of a name: "Mari Maasikas" → "MM". */
export function initials(name) {
  const parts = String(name || '').trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return '?';
  const first = [...parts[0]][0] || '';
  const last = parts.length > 1 ? [...parts[parts.length - 1]][0] : '';
  return (first + last).toUpperCase();
}

/**
 * nameMismatch reports whether the name a principal was invited under
 * differs from the name on their identity document (the MRZ: surname and
 * given names in capitals, without accents), ignoring case, accents,
 * punctuation and the order of the names.
 */
export function nameMismatch(invited, doc) {
  if (!doc || (!doc.surname && !doc.given_names)) return false;
  return words(invited) !== words([doc.given_names, doc.surname].join(' '));
}

function words(s) {
  return String(s || '').normalize('NFD').replace(/[\u0300-\u036f]/g, '').toUpperCase()
    .split(/[^A-Z0-9]+/).filter(Boolean).sort().join(' ');
}
