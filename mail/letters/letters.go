// Package letters writes the e-mails a person invited to a hearing or a
// notarial act receives — the invitation, a new link, a change of time, the
// withdrawal, a reminder — in English, Estonian or Russian, with the
// session's time in the recipient's own time zone, and the calendar event
// that goes with them.
package letters

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones must resolve on hosts without a zoneinfo database

	"github.com/chamber-court/chamber/mail"
)

// Lang is a language letters are written in.
type Lang string

// The languages.
const (
	English  Lang = "en"
	Estonian Lang = "et"
	Russian  Lang = "ru"
)

// Langs lists every language, the default first.
var Langs = []Lang{English, Estonian, Russian}

// ParseLang accepts a language tag ("et", "ET", "et-EE", "ru_RU") whose
// primary language Chamber writes in.
func ParseLang(s string) (Lang, error) {
	primary, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(s)), "-")
	primary, _, _ = strings.Cut(primary, "_")
	for _, l := range Langs {
		if primary == string(l) {
			return l, nil
		}
	}
	return "", fmt.Errorf("letters are written in en, et or ru, not %q", s)
}

// LoadZone resolves an IANA time zone name ("Asia/Tokyo", "UTC"). The
// server's own "Local" zone is refused: it means nothing to a recipient.
func LoadZone(name string) (*time.Location, error) {
	name = strings.TrimSpace(name)
	if name == "" || name == "Local" || len(name) > 64 {
		return nil, errors.New("give an IANA time zone such as Europe/Tallinn or Asia/Tokyo")
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q; give an IANA name such as Europe/Tallinn", name)
	}
	return loc, nil
}

// Kind is what a letter announces.
type Kind string

// The letters.
const (
	Invitation Kind = "invitation" // the first invitation, with the link
	NewLink    Kind = "reissue"    // a new link replaces the old one
	Update     Kind = "update"     // the time changed (or was set)
	Cancel     Kind = "cancel"     // the invitation was withdrawn
	Reminder   Kind = "reminder"   // the session begins soon
)

// Letter is everything one letter says.
type Letter struct {
	Kind Kind
	Lang Lang
	Zone *time.Location // the recipient's zone; nil means UTC

	Recipient   string // the invited person's name
	Role        string // their role: party, witness, …
	SessionKind string // hearing or notarisation
	Title       string
	CaseNumber  string
	ActType     string
	// Start is the session's time; nil when not yet scheduled.
	Start *time.Time
	// Previous is the time an Update replaces; nil when it sets the
	// first one.
	Previous *time.Time
	// JoinURL carries the token: only Invitation and NewLink letters
	// have it, and it appears nowhere but in their body.
	JoinURL   string
	ExpiresAt time.Time
	// Now is when the letter is written: a reminder says how soon the
	// session begins.
	Now time.Time
	// Sender signs the letter: the court or the notary.
	Sender string
}

// Compose writes the letter: its subject and plain-text body.
func (l Letter) Compose() (subject, body string) {
	t := tongueOf(l.Lang)
	var b strings.Builder
	para := func(lines ...string) {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		for _, s := range lines {
			if s != "" {
				b.WriteString(s + "\n")
			}
		}
	}
	hearing := l.SessionKind != "notarisation"
	what := l.what(t)
	para(fmt.Sprintf(t.greeting, l.Recipient))
	switch l.Kind {
	case Invitation, NewLink:
		intro := t.invited(hearing, what)
		if l.Kind == NewLink {
			intro = t.newLink(hearing, what)
		}
		para(intro, t.role+": "+t.roleName(l.Role), t.time+": "+l.when(t))
		para(t.joinWith, l.JoinURL)
		para(fmt.Sprintf(t.personal, t.format(l.ExpiresAt, l.zone())), t.advice)
		para(t.noLinkInCalendar)
	case Update:
		if l.Previous == nil {
			para(t.timeSet(hearing, what), t.newTime+": "+l.when(t))
		} else {
			para(t.timeChanged(hearing, what), t.newTime+": "+l.when(t), t.oldTime+": "+t.format(*l.Previous, l.zone()))
		}
		para(t.linkStillValid)
	case Cancel:
		var when string
		if l.Start != nil {
			when = t.time + ": " + l.when(t)
		}
		para(t.withdrawn(hearing, what), when, t.linkDead)
		para(t.calendarRemoves, t.mistake(hearing))
	case Reminder:
		para(t.reminder(hearing, what, t.inAbout(l.until())), t.time+": "+l.when(t))
		para(t.useYourLink)
	}
	para(l.signature())
	return fmt.Sprintf(t.subject[l.Kind], oneLine(l.Title)), b.String()
}

// Event is the calendar entry that goes with the letter: REQUEST for an
// invitation, a new link or a change of time, CANCEL for a withdrawal. It
// never carries the link. Reminders have none (ok is false), and neither
// has a session without a time.
func (l Letter) Event() (ev mail.Event, ok bool) {
	if l.Kind == Reminder || l.Start == nil {
		return mail.Event{}, false
	}
	t := tongueOf(l.Lang)
	hearing := l.SessionKind != "notarisation"
	ev = mail.Event{
		Method:      mail.MethodRequest,
		Start:       *l.Start,
		Summary:     t.summary(hearing) + ": " + oneLine(l.Title),
		Description: t.summary(hearing) + " " + quote(t, l.Title) + "\n" + t.role + ": " + t.roleName(l.Role) + "\n" + t.calendarNote,
		Location:    t.location,
		Language:    string(tongueLang(l.Lang)),
	}
	if l.Kind == Cancel {
		ev.Method = mail.MethodCancel
	}
	return ev, true
}

func (l Letter) zone() *time.Location {
	if l.Zone == nil {
		return time.UTC
	}
	return l.Zone
}

func (l Letter) when(t *tongue) string {
	if l.Start == nil {
		return t.toBeAnnounced
	}
	return t.format(*l.Start, l.zone())
}

func (l Letter) until() time.Duration {
	if l.Start == nil {
		return 0
	}
	return l.Start.Sub(l.Now)
}

// what names the session: its title in the language's quotes, with the
// case number or the kind of act.
func (l Letter) what(t *tongue) string {
	s := quote(t, l.Title)
	switch {
	case l.CaseNumber != "":
		s += " (" + t.caseNo + " " + oneLine(l.CaseNumber) + ")"
	case l.ActType != "":
		s += " (" + t.actName(l.ActType) + ")"
	}
	return s
}

func (l Letter) signature() string {
	if s := oneLine(l.Sender); s != "" {
		return s
	}
	return "Chamber"
}

func quote(t *tongue, title string) string { return t.open + oneLine(title) + t.close }

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
