package letters_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/access"
	"github.com/chamber-court/chamber/mail"
	"github.com/chamber-court/chamber/mail/letters"
	"github.com/chamber-court/chamber/sessions"
)

var (
	start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC) // a Monday, 18:00 in Tokyo
	kinds = []letters.Kind{letters.Invitation, letters.NewLink, letters.Update, letters.Cancel, letters.Reminder}
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	z, err := letters.LoadZone(name)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func letter(t *testing.T, k letters.Kind, lang letters.Lang) letters.Letter {
	prev := start.Add(-48 * time.Hour)
	return letters.Letter{
		Kind: k, Lang: lang, Zone: zone(t, "Asia/Tokyo"), Recipient: "Mari Tamm", Role: "witness",
		SessionKind: "hearing", Title: "Tamm v Kask", CaseNumber: "2-26-1234", Start: &start, Previous: &prev,
		JoinURL: "https://kohus.example/join/chi_SECRET", ExpiresAt: start.Add(7 * 24 * time.Hour),
		Now: start.Add(-24 * time.Hour), Sender: "Harju Maakohus",
	}
}

// The session's time is written in the recipient's zone, in their
// language's way of writing dates.
func TestLocalTime(t *testing.T) {
	want := map[letters.Lang]string{
		letters.English:  "Monday, 23 November 2026, 18:00 (Asia/Tokyo, UTC+09:00)",
		letters.Estonian: "esmaspäev, 23. november 2026, kell 18:00 (Asia/Tokyo, UTC+09:00)",
		letters.Russian:  "понедельник, 23 ноября 2026 г., 18:00 (Asia/Tokyo, UTC+09:00)",
	}
	for lang, w := range want {
		for _, k := range kinds {
			_, body := letter(t, k, lang).Compose()
			if !strings.Contains(body, w) {
				t.Errorf("%s %s does not give the time as %q:\n%s", lang, k, w, body)
			}
		}
	}
	// Zones west of UTC, half hours, summer time, and UTC itself.
	for name, w := range map[string]string{
		"America/New_York": "Monday, 23 November 2026, 04:00 (America/New_York, UTC-05:00)",
		"Asia/Kolkata":     "Monday, 23 November 2026, 14:30 (Asia/Kolkata, UTC+05:30)",
		"UTC":              "Monday, 23 November 2026, 09:00 (UTC)",
	} {
		l := letter(t, letters.Update, letters.English)
		l.Zone = zone(t, name)
		if _, body := l.Compose(); !strings.Contains(body, w) {
			t.Errorf("%s: want %q in\n%s", name, w, body)
		}
	}
	summer := time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)
	l := letter(t, letters.Reminder, letters.Estonian)
	l.Start, l.Zone = &summer, zone(t, "Europe/Tallinn")
	if _, body := l.Compose(); !strings.Contains(body, "kolmapäev, 1. juuli 2026, kell 12:00 (Europe/Tallinn, UTC+03:00)") {
		t.Errorf("summer time in Tallinn:\n%s", body)
	}
}

// Every letter is in the language asked for: its own words, never the
// English ones, and the link only where it belongs.
func TestLanguagesAndLink(t *testing.T) {
	words := map[letters.Lang]map[letters.Kind]string{
		letters.English: {letters.Invitation: "Invitation: Tamm v Kask", letters.NewLink: "New link: Tamm v Kask",
			letters.Update: "New time: Tamm v Kask", letters.Cancel: "Cancelled: Tamm v Kask", letters.Reminder: "Reminder: Tamm v Kask"},
		letters.Estonian: {letters.Invitation: "Kutse: Tamm v Kask", letters.NewLink: "Uus link: Tamm v Kask",
			letters.Update: "Uus aeg: Tamm v Kask", letters.Cancel: "Tühistatud: Tamm v Kask", letters.Reminder: "Meeldetuletus: Tamm v Kask"},
		letters.Russian: {letters.Invitation: "Приглашение: Tamm v Kask", letters.NewLink: "Новая ссылка: Tamm v Kask",
			letters.Update: "Новое время: Tamm v Kask", letters.Cancel: "Отменено: Tamm v Kask", letters.Reminder: "Напоминание: Tamm v Kask"},
	}
	greeting := map[letters.Lang]string{letters.English: "Dear Mari Tamm,", letters.Estonian: "Lugupeetud Mari Tamm", letters.Russian: "Здравствуйте, Mari Tamm!"}
	role := map[letters.Lang]string{letters.English: "witness", letters.Estonian: "tunnistaja", letters.Russian: "свидетель"}
	for lang, subjects := range words {
		for k, subject := range subjects {
			l := letter(t, k, lang)
			gotSubject, body := l.Compose()
			if gotSubject != subject {
				t.Errorf("%s %s: subject %q, want %q", lang, k, gotSubject, subject)
			}
			if !strings.HasPrefix(body, greeting[lang]+"\n") || !strings.HasSuffix(body, "Harju Maakohus\n") {
				t.Errorf("%s %s: greeting or signature:\n%s", lang, k, body)
			}
			if lang != letters.English && (strings.Contains(body, " the ") || strings.Contains(body, "Your ")) {
				t.Errorf("%s %s has English in it:\n%s", lang, k, body)
			}
			withLink := k == letters.Invitation || k == letters.NewLink
			if got := strings.Contains(body, l.JoinURL); got != withLink {
				t.Errorf("%s %s: link in body = %v", lang, k, got)
			}
			if withLink && !strings.Contains(body, role[lang]) {
				t.Errorf("%s %s does not name the role %q", lang, k, role[lang])
			}
			ev, ok := l.Event()
			if ok != (k != letters.Reminder) {
				t.Errorf("%s %s: calendar event = %v", lang, k, ok)
			}
			if strings.Contains(ev.Summary+ev.Description+ev.Location, "chi_") {
				t.Errorf("%s %s: the calendar event carries the link", lang, k)
			}
			if ok && ev.Method != map[bool]string{true: mail.MethodCancel, false: mail.MethodRequest}[k == letters.Cancel] {
				t.Errorf("%s %s: method %s", lang, k, ev.Method)
			}
			if ok && ev.Language != string(lang) {
				t.Errorf("%s %s: calendar language %q", lang, k, ev.Language)
			}
		}
	}
}

func TestUnscheduledAndNotarialAct(t *testing.T) {
	l := letter(t, letters.Invitation, letters.Estonian)
	l.Start, l.SessionKind, l.CaseNumber, l.ActType = nil, "notarisation", "", "power_of_attorney"
	subject, body := l.Compose()
	for _, want := range []string{"notariaalses toimingus „Tamm v Kask“ (volikiri)", "Aeg: teatatakse hiljem"} {
		if !strings.Contains(body, want) {
			t.Errorf("want %q in\n%s", want, body)
		}
	}
	if subject != "Kutse: Tamm v Kask" {
		t.Errorf("subject %q", subject)
	}
	if _, ok := l.Event(); ok {
		t.Error("a calendar event without a time")
	}
	u := letter(t, letters.Update, letters.Russian)
	u.Previous = nil
	if _, body := u.Compose(); !strings.Contains(body, "назначено") || strings.Contains(body, "Прежнее время") {
		t.Errorf("the first time set reads as a change:\n%s", body)
	}
}

// Every role and every act type has its word in every language.
func TestVocabularyComplete(t *testing.T) {
	var roles []access.Role
	for _, k := range []access.Kind{access.Hearing, access.Notarisation} {
		roles = append(roles, access.Roles(k)...)
	}
	for _, lang := range letters.Langs {
		for _, r := range roles {
			l := letter(t, letters.Invitation, lang)
			l.Role = string(r)
			if _, body := l.Compose(); lang != letters.English && strings.Contains(body, ": "+string(r)+"\n") {
				t.Errorf("%s has no word for the role %s", lang, r)
			}
		}
		for _, a := range sessions.ActTypes {
			l := letter(t, letters.Invitation, lang)
			l.SessionKind, l.CaseNumber, l.ActType = "notarisation", "", a
			// English words are the keys themselves, but for those with "_".
			if _, body := l.Compose(); (lang != letters.English || strings.Contains(a, "_")) && strings.Contains(body, "("+a+")") {
				t.Errorf("%s has no word for the act %s", lang, a)
			}
		}
	}
}

func TestReminderSaysHowSoon(t *testing.T) {
	tests := []struct {
		lang  letters.Lang
		until time.Duration
		want  string
	}{
		{letters.English, 24 * time.Hour, "begins in about 24 hours"},
		{letters.English, time.Hour, "begins in about 60 minutes"},
		{letters.English, 2 * time.Hour, "begins in about 2 hours"},
		{letters.English, 72 * time.Hour, "begins in about 3 days"},
		{letters.English, 30 * time.Second, "begins in about 1 minute"},
		{letters.Estonian, 24 * time.Hour, "algab umbes 24 tunni pärast"},
		{letters.Estonian, time.Hour, "algab umbes 60 minuti pärast"},
		{letters.Russian, 24 * time.Hour, "начнётся примерно через 24 часа"},
		{letters.Russian, 21 * time.Hour, "начнётся примерно через 21 час"},
		{letters.Russian, 11 * time.Hour, "начнётся примерно через 11 часов"},
		{letters.Russian, 2 * time.Hour, "начнётся примерно через 2 часа"},
		{letters.Russian, 5 * 24 * time.Hour, "начнётся примерно через 5 дней"},
		{letters.Russian, 31 * time.Minute, "начнётся примерно через 31 минуту"},
		{letters.Russian, 44 * time.Minute, "начнётся примерно через 44 минуты"},
	}
	for _, tt := range tests {
		l := letter(t, letters.Reminder, tt.lang)
		l.Now = start.Add(-tt.until)
		if _, body := l.Compose(); !strings.Contains(body, tt.want) {
			t.Errorf("%s %v: want %q in\n%s", tt.lang, tt.until, tt.want, body)
		}
	}
}

func TestParseLangAndZone(t *testing.T) {
	for in, want := range map[string]letters.Lang{"en": letters.English, "ET": letters.Estonian, "et-EE": letters.Estonian, "ru_RU": letters.Russian, " ru ": letters.Russian} {
		if got, err := letters.ParseLang(in); err != nil || got != want {
			t.Errorf("ParseLang(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "de", "e", "english", "fi-EE"} {
		if _, err := letters.ParseLang(in); err == nil {
			t.Errorf("ParseLang(%q) accepted", in)
		}
	}
	for _, in := range []string{"Asia/Tokyo", "Europe/Tallinn", "UTC", "America/Argentina/Buenos_Aires"} {
		if _, err := letters.LoadZone(in); err != nil {
			t.Errorf("LoadZone(%q): %v", in, err)
		}
	}
	for _, in := range []string{"", "Local", "Mars/Olympus", "../../etc/passwd", "Europe/Tallinn\nX", strings.Repeat("A", 100)} {
		if _, err := letters.LoadZone(in); err == nil {
			t.Errorf("LoadZone(%q) accepted", in)
		}
	}
}

// Titles come from users: whatever they hold, a letter stays a letter.
func FuzzCompose(f *testing.F) {
	f.Add("Tamm v Kask", "Mari Tamm", "2-26-1234")
	f.Add("a\r\nBcc: x@y", "\x00", "")
	f.Fuzz(func(t *testing.T, title, name, caseNo string) {
		for _, lang := range letters.Langs {
			for _, k := range kinds {
				l := letter(t, k, lang)
				l.Title, l.Recipient, l.CaseNumber = title, name, caseNo
				subject, _ := l.Compose()
				if strings.ContainsAny(subject, "\r\n") {
					t.Fatalf("a line break in the subject %q", subject)
				}
				if ev, ok := l.Event(); ok {
					ev.UID, ev.Organizer.Email, ev.Attendee.Email = "u@x.example", "o@x.example", "a@x.example"
					if _, err := ev.ICS(); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}

// BenchmarkInvitation writes one invitation letter and its calendar
// object, as the sender does for every letter.
func BenchmarkInvitation(b *testing.B) {
	tokyo, _ := letters.LoadZone("Asia/Tokyo")
	l := letters.Letter{Kind: letters.Invitation, Lang: letters.Estonian, Zone: tokyo, Recipient: "Mari Tamm", Role: "witness",
		SessionKind: "hearing", Title: "Tamm v Kask", CaseNumber: "2-26-1234", Start: &start,
		JoinURL: "https://kohus.example/join/chi_SECRET", ExpiresAt: start.Add(7 * 24 * time.Hour), Sender: "Harju Maakohus"}
	b.ReportAllocs()
	for b.Loop() {
		l.Compose()
		ev, _ := l.Event()
		ev.UID, ev.Organizer.Email, ev.Attendee.Email = "u@kohus.example", "k@kohus.example", "m@example.org"
		if _, err := ev.ICS(); err != nil {
			b.Fatal(err)
		}
	}
}
