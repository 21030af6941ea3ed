package mail_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	ics "github.com/arran4/golang-ical"

	"github.com/chamber-court/chamber/mail"
)

// rfc5545 checks the rules of RFC 5545 section 3.1 and 3.6 that a
// calendar program relies on, independently of the library that wrote the
// object, and returns the unfolded content lines.
func rfc5545(t *testing.T, data []byte) []string {
	t.Helper()
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		t.Fatal("the object does not end with CRLF")
	}
	physical := strings.Split(strings.TrimSuffix(string(data), "\r\n"), "\r\n")
	var lines []string
	for i, l := range physical {
		if strings.ContainsAny(l, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, l)
		}
		if len(l) > 75 {
			t.Fatalf("line %d is %d octets long (at most 75): %q", i+1, len(l), l)
		}
		if !utf8.ValidString(l) {
			t.Fatalf("line %d splits a UTF-8 character: %q", i+1, l)
		}
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			if len(lines) == 0 {
				t.Fatal("the object starts with a continuation line")
			}
			lines[len(lines)-1] += l[1:]
			continue
		}
		lines = append(lines, l)
	}
	name := regexp.MustCompile(`^[A-Z][A-Z0-9-]*[;:]`)
	var stack []string
	for _, l := range lines {
		if !name.MatchString(l) {
			t.Fatalf("content line without a property name: %q", l)
		}
		switch {
		case strings.HasPrefix(l, "BEGIN:"):
			stack = append(stack, strings.TrimPrefix(l, "BEGIN:"))
		case strings.HasPrefix(l, "END:"):
			if len(stack) == 0 || stack[len(stack)-1] != strings.TrimPrefix(l, "END:") {
				t.Fatalf("unbalanced %q", l)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) != 0 || lines[0] != "BEGIN:VCALENDAR" || lines[len(lines)-1] != "END:VCALENDAR" {
		t.Fatalf("not one VCALENDAR: %q … %q", lines[0], lines[len(lines)-1])
	}
	count := func(prefix string) int {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		return n
	}
	for _, p := range []string{"VERSION:2.0", "PRODID:", "METHOD:", "UID:", "DTSTAMP:", "DTSTART:", "DTEND:", "SEQUENCE:", "ORGANIZER", "ATTENDEE", "STATUS:"} {
		if n := count(p); n != 1 {
			t.Fatalf("%s appears %d times, want once", p, n)
		}
	}
	utc := regexp.MustCompile(`^(DTSTAMP|DTSTART|DTEND):\d{8}T\d{6}Z$`)
	for _, l := range lines {
		if strings.HasPrefix(l, "DTSTAMP") || strings.HasPrefix(l, "DTSTART") || strings.HasPrefix(l, "DTEND") {
			if !utc.MatchString(l) {
				t.Fatalf("time not in UTC form: %q", l)
			}
		}
	}
	return lines
}

func prop(lines []string, name string) string {
	for _, l := range lines {
		if head, value, ok := strings.Cut(l, ":"); ok && (head == name || strings.HasPrefix(head, name+";")) {
			return value
		}
	}
	return ""
}

func TestEventICS(t *testing.T) {
	start := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	// A summary with every character TEXT must escape, letters of three
	// scripts, and enough of them to be folded across several lines.
	summary := `Kohtuistung: Tamm v Kask; Õun, Šamaš \ Жуков — ` + strings.Repeat("пример ", 12)
	base := mail.Event{
		UID: "4f1c2a9e-0000-4000-8000-000000000001@kohus.example", Sequence: 3,
		Stamp: start.Add(-48 * time.Hour), Start: start, Duration: 90 * time.Minute,
		Summary: summary, Description: "Rida üks\nRida kaks", Location: "Veebis", Language: "et",
		Organizer: mail.Address{Name: "Harju Maakohus", Email: "kohus@kohus.example"},
		Attendee:  mail.Address{Name: "O'Brien, Mari", Email: "mari@example.org"},
	}
	for _, method := range []string{mail.MethodRequest, mail.MethodCancel} {
		t.Run(method, func(t *testing.T) {
			ev := base
			ev.Method = method
			data, err := ev.ICS()
			if err != nil {
				t.Fatal(err)
			}
			lines := rfc5545(t, data)
			wantStatus := map[string]string{mail.MethodRequest: "CONFIRMED", mail.MethodCancel: "CANCELLED"}[method]
			for name, want := range map[string]string{
				"METHOD": method, "DTSTART": "20261123T090000Z", "DTEND": "20261123T103000Z",
				"DTSTAMP": "20261121T090000Z", "SEQUENCE": "3", "STATUS": wantStatus,
				"ORGANIZER": "mailto:kohus@kohus.example", "ATTENDEE": "mailto:mari@example.org",
			} {
				if got := prop(lines, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if !strings.Contains(string(data), "ORGANIZER;CN=Harju Maakohus:") {
				t.Error("the organizer's plain name is not its CN")
			}
			if strings.Contains(string(data), "O'Brien") || strings.Contains(string(data), `\'`) {
				t.Error("a name the library would escape wrongly was written as a parameter")
			}
			if got := prop(lines, "SUMMARY"); !strings.Contains(got, `Tamm v Kask\; Õun\, Šamaš \\ Жуков`) {
				t.Errorf("SUMMARY not escaped as TEXT: %q", got)
			}

			// And back, through the library's parser.
			cal, err := ics.ParseCalendar(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			events := cal.Events()
			if len(events) != 1 {
				t.Fatalf("%d events", len(events))
			}
			e := events[0]
			if e.Id() != base.UID {
				t.Errorf("UID %q", e.Id())
			}
			if got, _ := e.GetStartAt(); !got.Equal(start) {
				t.Errorf("DTSTART %v", got)
			}
			if got := e.GetProperty(ics.ComponentPropertySummary).Value; got != summary {
				t.Errorf("SUMMARY round trip:\n got %q\nwant %q", got, summary)
			}
			if got := e.GetProperty(ics.ComponentPropertyDescription).Value; got != "Rida üks\nRida kaks" {
				t.Errorf("DESCRIPTION round trip: %q", got)
			}
		})
	}
}

func TestEventICSRefusesIncomplete(t *testing.T) {
	good := mail.Event{Method: mail.MethodRequest, UID: "u@x.example", Start: time.Now(),
		Organizer: mail.Address{Email: "o@x.example"}, Attendee: mail.Address{Email: "a@x.example"}}
	if _, err := good.ICS(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*mail.Event){
		"method":    func(e *mail.Event) { e.Method = "PUBLISH" },
		"uid":       func(e *mail.Event) { e.UID = "" },
		"start":     func(e *mail.Event) { e.Start = time.Time{} },
		"organizer": func(e *mail.Event) { e.Organizer.Email = "" },
		"attendee":  func(e *mail.Event) { e.Attendee.Email = "" },
		"sequence":  func(e *mail.Event) { e.Sequence = -1 },
	} {
		ev := good
		mutate(&ev)
		if _, err := ev.ICS(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// Control characters a user typed into a title cannot break the object.
func FuzzEventICS(f *testing.F) {
	f.Add("Tamm v Kask", "Mari Tamm")
	f.Add("a\r\nb;c,d\\e", "x\x00y")
	f.Add(strings.Repeat("ž", 200), "Жуков")
	f.Fuzz(func(t *testing.T, summary, name string) {
		if !utf8.ValidString(summary) || !utf8.ValidString(name) {
			return
		}
		ev := mail.Event{Method: mail.MethodRequest, UID: "u@x.example", Start: time.Unix(1e9, 0), Stamp: time.Unix(1e9, 0),
			Summary: summary, Description: summary, Organizer: mail.Address{Name: name, Email: "o@x.example"},
			Attendee: mail.Address{Name: name, Email: "a@x.example"}}
		data, err := ev.ICS()
		if err != nil {
			t.Fatal(err)
		}
		rfc5545(t, data)
	})
}
