// Every string a person reads comes from a catalog in ./strings/, looked
// up here by key, so that a translation is one new file. English is the
// fallback for keys a catalog lacks.
import en from './strings/en.js';
import et from './strings/et.js';
import ru from './strings/ru.js';

// jstest/strings.test.mjs checks that each catalog has every English key.
const catalogs = { en, et, ru };
let current = en;
let currentLang = 'en';
const STORED = 'chamber.lang';

/** LANGUAGES are the catalogs a person can choose, each named in itself. */
export const LANGUAGES = [['en', 'English'], ['et', 'Eesti'], ['ru', 'Русский']].filter(([code]) => catalogs[code]);

/**
 * Chooses the catalog: the language the person chose on this browser
 * (the language switch), else the browser's preferred languages.
 */
export function chooseLanguage(preferred = navigator.languages || [navigator.language]) {
  let stored = '';
  try { stored = localStorage.getItem(STORED) || ''; } catch { /* storage off */ }
  for (const tag of [stored, ...preferred]) {
    const base = String(tag || '').toLowerCase().split('-')[0];
    if (catalogs[base]) {
      current = catalogs[base];
      currentLang = base;
      break;
    }
  }
  document.documentElement.lang = currentLang;
  return currentLang;
}

/** The active language tag, e.g. "en". */
export function language() { return currentLang; }

/**
 * t returns the string for key, with {name} placeholders replaced from
 * params. A missing key shows itself, so it is noticed rather than hidden.
 */
export function t(key, params) {
  let s = current[key] ?? en[key];
  if (s === undefined) return key;
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => (params[name] !== undefined ? String(params[name]) : m));
  }
  return s;
}

/** Human label of a role ("embassy_officer" → "Embassy officer"). */
export function roleLabel(role) { return t('role.' + role); }

/** setLanguage keeps a person's choice of language for this browser. */
export function setLanguage(lang) {
  if (!catalogs[lang]) return;
  try { localStorage.setItem(STORED, lang); } catch { /* storage off: this page only */ }
}
