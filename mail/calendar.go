package mail

import (
	"errors"
	"strings"
	"time"
	"unicode"

	ics "github.com/arran4/golang-ical"
)

// iTIP methods (RFC 5546) of the calendar objects Chamber sends.
const (
	MethodRequest = "REQUEST"
	MethodCancel  = "CANCEL"
)

// Event is one calendar event as an organiser sends it to one attendee.
type Event struct {
	Method string // MethodRequest or MethodCancel
	// UID names the event for good: every update and the cancellation
	// carry the same one, so the recipient's calendar replaces its entry.
	UID string
	// Sequence orders the versions of the event (RFC 5545 3.8.7.4): an
	// update or a cancellation carries a higher one than what it replaces.
	Sequence    int
	Stamp       time.Time // DTSTAMP: when this version was made
	Start       time.Time
	Duration    time.Duration
	Summary     string
	Description string
	Location    string
	Language    string // LANGUAGE of the texts, e.g. "et"
	Organizer   Address
	Attendee    Address
}

// ICS renders the event as an iCalendar object: CRLF line ends, lines
// folded at 75 octets, times in UTC (so no VTIMEZONE is needed: every
// calendar shows them in its own zone), TEXT values escaped.
func (e Event) ICS() ([]byte, error) {
	switch {
	case e.Method != MethodRequest && e.Method != MethodCancel:
		return nil, errors.New("mail: calendar method must be REQUEST or CANCEL")
	case e.UID == "" || e.Start.IsZero() || e.Organizer.Email == "" || e.Attendee.Email == "":
		return nil, errors.New("mail: an event needs a UID, a start, an organizer and an attendee")
	case e.Sequence < 0:
		return nil, errors.New("mail: negative SEQUENCE")
	}
	cal := ics.NewCalendarFor("Chamber")
	cal.SetProductId("-//Chamber//Chamber invitations//EN")
	cal.SetCalscale("GREGORIAN")
	cal.SetMethod(ics.Method(e.Method))

	ev := cal.AddEvent(text(e.UID))
	ev.SetDtStampTime(e.Stamp.UTC())
	ev.SetSequence(e.Sequence)
	ev.SetStartAt(e.Start.UTC())
	d := e.Duration
	if d <= 0 {
		d = time.Hour
	}
	ev.SetEndAt(e.Start.Add(d).UTC())
	var lang []ics.PropertyParameter
	if e.Language != "" && paramSafe(e.Language) {
		lang = append(lang, &ics.KeyValues{Key: string(ics.ParameterLanguage), Value: []string{e.Language}})
	}
	ev.SetSummary(text(e.Summary), lang...)
	if e.Description != "" {
		ev.SetDescription(text(e.Description), lang...)
	}
	if e.Location != "" {
		ev.SetLocation(text(e.Location), lang...)
	}
	ev.SetOrganizer("mailto:"+e.Organizer.Email, cn(e.Organizer.Name)...)
	ev.AddAttendee("mailto:"+e.Attendee.Email, append(cn(e.Attendee.Name),
		ics.CalendarUserTypeIndividual, ics.ParticipationRoleReqParticipant,
		ics.ParticipationStatusNeedsAction, ics.WithRSVP(false))...)
	ev.SetTimeTransparency(ics.TransparencyOpaque)
	if e.Method == MethodCancel {
		ev.SetStatus(ics.ObjectStatusCancelled)
	} else {
		ev.SetStatus(ics.ObjectStatusConfirmed)
	}
	var b strings.Builder
	if err := cal.SerializeTo(&b, ics.WithNewLineWindows); err != nil {
		return nil, err
	}
	return []byte(b.String()), nil
}

// text keeps a TEXT value to what RFC 5545 can carry after escaping:
// control characters other than the newline (which is escaped as \n) are
// dropped, a CR LF becomes one newline.
func text(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Map(func(r rune) rune {
		if r == '\n' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}

// cn is the CN parameter for a display name, or none. The library writes
// parameter values unquoted and escapes some characters with a backslash,
// which RFC 5545 does not define for parameters; so a name is used only when
// it consists of characters that need neither (letters, digits, spaces,
// dots, hyphens), and the address alone identifies the person otherwise.
func cn(name string) []ics.PropertyParameter {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 200 || !paramSafe(name) {
		return nil
	}
	return []ics.PropertyParameter{ics.WithCN(name)}
}

func paramSafe(s string) bool {
	for _, r := range s {
		if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
