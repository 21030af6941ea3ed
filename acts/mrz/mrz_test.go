package mrz

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// ICAO Doc 9303 specimens (parts 4, 5 and 6). All expire on 2012-04-15.
const (
	td3Upper = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<"
	td3Lower = "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
	td3      = td3Upper + "\n" + td3Lower

	td1 = "I<UTOD231458907<<<<<<<<<<<<<<<\n" +
		"7408122F1204159UTO<<<<<<<<<<<6\n" +
		"ERIKSSON<<ANNA<MARIA<<<<<<<<<<"

	td2 = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\n" +
		"D231458907UTO7408122F1204159<<<<<<<6"
)

var (
	beforeExpiry = time.Date(2010, 6, 1, 12, 0, 0, 0, time.UTC)
	expiryDay    = time.Date(2012, 4, 15, 23, 59, 0, 0, time.UTC)
	afterExpiry  = time.Date(2012, 4, 16, 0, 0, 0, 0, time.UTC)
	today        = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
)

// fix recomputes every check digit of a TD1/TD2/TD3 zone, so tests can
// build valid zones from edited fields.
func fix(t *testing.T, text string) string {
	t.Helper()
	l := strings.Split(text, "\n")
	set := func(line, pos int, data string) {
		b := []byte(l[line])
		b[pos] = byte('0' + CheckDigit(data))
		l[line] = string(b)
	}
	switch len(l[0]) {
	case 30:
		if l[0][14] != '<' {
			set(0, 14, l[0][5:14])
		}
		set(1, 6, l[1][0:6])
		set(1, 14, l[1][8:14])
		set(1, 29, l[0][5:30]+l[1][0:7]+l[1][8:15]+l[1][18:29])
	default:
		end := len(l[1]) - 1
		if l[1][9] != '<' || end == 43 {
			set(1, 9, l[1][0:9])
		}
		set(1, 19, l[1][13:19])
		set(1, 27, l[1][21:27])
		if end == 43 {
			set(1, 42, l[1][28:42])
		}
		set(1, end, l[1][0:10]+l[1][13:20]+l[1][21:end])
	}
	return strings.Join(l, "\n")
}

// corrupt replaces the character at (line, pos) of a zone.
func corrupt(text string, line, pos int, c byte) string {
	l := strings.Split(text, "\n")
	b := []byte(l[line])
	b[pos] = c
	l[line] = string(b)
	return strings.Join(l, "\n")
}

func TestSpecimens(t *testing.T) {
	want := map[string]Document{
		TD3: {Format: TD3, Type: "P", Number: "L898902C3", IssuingState: "UTO", Surname: "ERIKSSON", GivenNames: "ANNA MARIA",
			Nationality: "UTO", BirthDate: "1974-08-12", Sex: "F", ExpiryDate: "2012-04-15", OptionalData: "ZE184226B"},
		TD1: {Format: TD1, Type: "I", Number: "D23145890", IssuingState: "UTO", Surname: "ERIKSSON", GivenNames: "ANNA MARIA",
			Nationality: "UTO", BirthDate: "1974-08-12", Sex: "F", ExpiryDate: "2012-04-15"},
		TD2: {Format: TD2, Type: "I", Number: "D23145890", IssuingState: "UTO", Surname: "ERIKSSON", GivenNames: "ANNA MARIA",
			Nationality: "UTO", BirthDate: "1974-08-12", Sex: "F", ExpiryDate: "2012-04-15"},
	}
	for format, text := range map[string]string{TD3: td3, TD1: td1, TD2: td2} {
		t.Run(format, func(t *testing.T) {
			for _, now := range []time.Time{beforeExpiry, expiryDay} {
				got, err := Parse(text, now)
				if err != nil {
					t.Fatalf("Parse at %v: %v", now, err)
				}
				if got != want[format] {
					t.Errorf("Parse at %v =\n%+v, want\n%+v", now, got, want[format])
				}
			}
			for _, now := range []time.Time{afterExpiry, today} {
				got, err := Parse(text, now)
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("Parse at %v = %+v, %v; want *Error", now, got, err)
				}
				if e.Fields["expiry_date"] != "document expired on 2012-04-15" || len(e.Fields) != 1 || !e.Expired() {
					t.Errorf("Parse at %v fields = %v, want only expiry_date expired", now, e.Fields)
				}
				if got != (Document{}) {
					t.Errorf("Parse returned a document with an error: %+v", got)
				}
			}
		})
	}
}

func TestInputTolerance(t *testing.T) {
	for name, text := range map[string]string{
		"crlf":                td3Upper + "\r\n" + td3Lower,
		"surrounding spaces":  "  \n" + td3 + "\n\t ",
		"line spaces":         " " + td3Upper + " \n\t" + td3Lower + "\r\n",
		"lower case (wedge)":  strings.ToLower(td3),
		"mixed case and crlf": strings.ToLower(td3Upper) + "\r\n" + td3Lower + "\r\n",
	} {
		if _, err := Parse(text, beforeExpiry); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, text, field, contains string
	}{
		{"empty", "  \r\n ", "mrz", "empty"},
		{"one line", td3Upper, "mrz", "got 1 line(s) of 44"},
		{"short line", td3Upper + "\n" + td3Lower[:43], "mrz", "of 44, 43 characters"},
		{"three TD3 lines", td3 + "\n" + td3Lower, "mrz", "got 3 line(s)"},
		{"two TD1 lines", strings.Join(strings.Split(td1, "\n")[:2], "\n"), "mrz", "got 2 line(s) of 30, 30"},
		{"blank line between", td3Upper + "\n\n" + td3Lower, "mrz", "got 3 line(s)"},
		{"space inside", strings.Replace(td3, "ANNA<MARIA", "ANNA MARIA", 1), "mrz", `line 1, position 20: character ' '`},
		{"punctuation", strings.Replace(td3, "UTO7408", "UT.7408", 1), "mrz", `line 2, position 13: character '.'`},
		{"non-ASCII", strings.Replace(td3, "ERIKSSON", "ERIKSSÖN", 1), "mrz", "not allowed"},
		{"tab inside", strings.Replace(td3, "<<ANNA", "<\tANNA", 1), "mrz", `'\t'`},
		{"visa", fix(t, "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"+td3Lower), "type", "visas"},
		{"ID code in TD3", fix(t, "I<"+td3Upper[2:]+"\n"+td3Lower), "type", "not a passport code"},
		{"passport code in TD1", fix(t, "P"+td1[1:]), "type", "not an A, C or I code"},
		{"digit in state", fix(t, strings.Replace(td3, "P<UTO", "P<U1O", 1)), "issuing_state", "not a state code"},
		{"missing nationality", fix(t, corrupt(corrupt(corrupt(td3, 1, 10, '<'), 1, 11, '<'), 1, 12, '<')), "nationality", "missing"},
		{"digit in name", fix(t, strings.Replace(td3, "ANNA", "ANN4", 1)), "surname", "only letters"},
		{"empty name", fix(t, "P<UTO"+strings.Repeat("<", 39)+"\n"+td3Lower), "surname", "missing"},
		{"month 13", fix(t, corrupt(corrupt(td3, 1, 15, '1'), 1, 16, '3')), "birth_date", "not a date"},
		{"30 February", fix(t, strings.Replace(td3, "7408122", "7402302", 1)), "birth_date", "not a date"},
		{"unknown month known day", fix(t, strings.Replace(td3, "7408122", "74<<122", 1)), "birth_date", "not a date"},
		{"unknown expiry day", fix(t, strings.Replace(td3, "1204159", "1204<<9", 1)), "expiry_date", "not a date"},
		{"letter in date", fix(t, strings.Replace(td3, "7408122", "74O8122", 1)), "birth_date", "not a date"},
		{"sex", fix(t, strings.Replace(td3, "2F12", "2Q12", 1)), "sex", `'Q' is not`},
		{"number with inner filler", fix(t, strings.Replace(td3, "L898902C3", "L89<902C3", 1)), "number", "filler inside"},
		{"missing number", fix(t, strings.Replace(td3, "L898902C3", "<<<<<<<<<", 1)), "number", "missing"},
		{"TD3 number check '<'", corrupt(td3, 1, 9, '<'), "number", "not a digit (computed 6)"},
		{"TD1 overflow without continuation", fix(t, corrupt(td1, 0, 14, '<')), "number", "no continuation"},
		{"TD1 overflow with short principal", fix(t, corrupt(strings.Replace(td1, "D23145890", "D2314589<", 1), 0, 14, '<')), "number", "not all used"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.text, beforeExpiry)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse = %v, want *Error", err)
			}
			if !strings.Contains(e.Fields[tc.field], tc.contains) {
				t.Errorf("fields = %q, want %s containing %q", e.Fields, tc.field, tc.contains)
			}
			if !strings.Contains(e.Error(), tc.field+": ") {
				t.Errorf("message %q does not name %s", e.Error(), tc.field)
			}
		})
	}
}

// TestCheckDigits corrupts each check digit, and each field a check digit
// covers, of every specimen, and expects that field (and the composite,
// which covers it too) to be reported.
func TestCheckDigits(t *testing.T) {
	type place struct {
		field     string
		line, pos int
	}
	for _, tc := range []struct {
		format string
		text   string
		places []place
	}{
		{TD3, td3, []place{
			{"number", 1, 9}, {"number", 1, 3},
			{"birth_date", 1, 19}, {"birth_date", 1, 16},
			{"expiry_date", 1, 27}, {"expiry_date", 1, 22},
			{"optional_data", 1, 42}, {"optional_data", 1, 30},
			{"composite", 1, 43},
		}},
		{TD2, td2, []place{
			{"number", 1, 9}, {"number", 1, 1},
			{"birth_date", 1, 19}, {"birth_date", 1, 18},
			{"expiry_date", 1, 27}, {"expiry_date", 1, 26},
			{"composite", 1, 35}, {"composite", 1, 30}, // optional data is covered by the composite only
		}},
		{TD1, td1, []place{
			{"number", 0, 14}, {"number", 0, 8},
			{"birth_date", 1, 6}, {"birth_date", 1, 5},
			{"expiry_date", 1, 14}, {"expiry_date", 1, 13},
			{"composite", 1, 29}, {"composite", 0, 20}, {"composite", 1, 20},
		}},
	} {
		for _, pl := range tc.places {
			orig := strings.Split(tc.text, "\n")[pl.line][pl.pos]
			// A digit that keeps the field a valid date or number but
			// changes its check sum.
			// changes its check sum: a change of 10 (A for <) would not.
			var repl byte
			switch {
			case orig >= '0' && orig < '9':
				repl = orig + 1
			case orig == '9':
				repl = '8'
			case orig == '<':
				repl = '1'
			default:
				repl = orig + 1
				if orig == 'Z' {
					repl = 'Y'
				}
			}
			bad := corrupt(tc.text, pl.line, pl.pos, repl)
			_, err := Parse(bad, beforeExpiry)
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%s: corrupting %s at line %d position %d: err = %v", tc.format, pl.field, pl.line+1, pl.pos+1, err)
				continue
			}
			if _, ok := e.Fields[pl.field]; !ok {
				t.Errorf("%s: corrupting %s at line %d position %d: fields %q lack it", tc.format, pl.field, pl.line+1, pl.pos+1, e.Fields)
			}
			if !strings.Contains(e.Fields[pl.field], "check digit") {
				t.Errorf("%s: %s problem %q does not mention the check digit", tc.format, pl.field, e.Fields[pl.field])
			}
			if fixed := fix(t, bad); fixed != bad {
				if _, err := Parse(fixed, beforeExpiry); err != nil && pl.field != "composite" {
					t.Errorf("%s: the same zone with recomputed digits fails: %v", tc.format, err)
				}
			}
		}
	}
}

func TestCheckDigitMessage(t *testing.T) {
	_, err := Parse(corrupt(td3, 1, 9, '5'), beforeExpiry)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	if got := e.Fields["number"]; got != "check digit 5 does not match computed 6" {
		t.Errorf("number = %q", got)
	}
	if got := e.Fields["composite"]; got != "check digit 0 does not match computed 3" {
		t.Errorf("composite = %q", got)
	}
}

func TestLongNumber(t *testing.T) {
	// Doc 9303 part 5's long-number specimen: D23145890734, check digit 9,
	// continued in the upper line's optional data.
	td1Long := fix(t, "I<UTOD23145890<7349<<<<<<<<<<<\n"+
		"7408122F1204159UTO<<<<<<<<<<<0\n"+
		"ERIKSSON<<ANNA<MARIA<<<<<<<<<<")
	d, err := Parse(td1Long, beforeExpiry)
	if err != nil {
		t.Fatal(err)
	}
	if d.Number != "D23145890734" || d.OptionalData != "" {
		t.Errorf("number %q optional %q", d.Number, d.OptionalData)
	}
	// With more optional data after the continuation's filler.
	d, err = Parse(fix(t, strings.Replace(td1Long, "7349<<<<<<<<<<<", "7349<ABC<<<<<<<", 1)), beforeExpiry)
	if err != nil || d.Number != "D23145890734" || d.OptionalData != "ABC" {
		t.Errorf("with optional data: %+v, %v", d, err)
	}
	_, err = Parse(fix(t, strings.Replace(td1Long, "7349<", "7348<", 1)), beforeExpiry)
	var e *Error
	if !errors.As(err, &e) || e.Fields["number"] != "check digit 8 does not match computed 9" {
		t.Errorf("bad overflow check digit: %v", err)
	}

	td2Long := fix(t, "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\n"+
		"D23145890<UTO7408122F12041597349<<<0")
	d, err = Parse(td2Long, beforeExpiry)
	if err != nil || d.Number != "D23145890734" || d.OptionalData != "" {
		t.Errorf("TD2 long number: %+v, %v", d, err)
	}
}

func TestDates(t *testing.T) {
	for _, tc := range []struct {
		name           string
		birth, expiry  string // YYMMDD
		now            time.Time
		wantB, wantExp string
	}{
		{"born last century", "740812", "300101", today, "1974-08-12", "2030-01-01"},
		{"born this century", "150301", "300101", today, "2015-03-01", "2030-01-01"},
		{"born today", "261123", "300101", today, "2026-11-23", "2030-01-01"},
		{"born tomorrow's date is last century", "261124", "300101", today, "1926-11-24", "2030-01-01"},
		{"unknown day", "7408<<", "300101", today, "1974-08", "2030-01-01"},
		{"unknown day and month", "74<<<<", "300101", today, "1974", "2030-01-01"},
		{"leap day", "000229", "300101", today, "2000-02-29", "2030-01-01"},
		{"expiry far ahead", "740812", "720101", today, "1974-08-12", "2072-01-01"},
		{"expiry at window end", "740812", "751231", today, "1974-08-12", "2075-12-31"},
		{"expires today", "740812", "261123", today, "1974-08-12", "2026-11-23"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := fix(t, strings.Replace(strings.Replace(td3, "740812", tc.birth, 1), "120415", tc.expiry, 1))
			d, err := Parse(text, tc.now)
			if err != nil {
				t.Fatal(err)
			}
			if d.BirthDate != tc.wantB || d.ExpiryDate != tc.wantExp {
				t.Errorf("birth %s expiry %s, want %s %s", d.BirthDate, d.ExpiryDate, tc.wantB, tc.wantExp)
			}
		})
	}
	// An expiry 50 years or more ahead resolves to the past century: expired.
	_, err := Parse(fix(t, strings.Replace(td3, "120415", "761231", 1)), today)
	var e *Error
	if !errors.As(err, &e) || e.Fields["expiry_date"] != "document expired on 1976-12-31" {
		t.Errorf("expiry 761231: %v", err)
	}
	// The day after the expiry day in the caller's time zone.
	tokyo := time.FixedZone("JST", 9*3600)
	_, err = Parse(td3, time.Date(2012, 4, 16, 1, 0, 0, 0, tokyo)) // still 15 April in UTC
	if !errors.As(err, &e) || !e.Expired() {
		t.Errorf("16 April in Tokyo: %v", err)
	}
}

func TestNames(t *testing.T) {
	for upper, want := range map[string][2]string{
		"P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<": {"ERIKSSON", "ANNA MARIA"},
		"P<UTODE<LA<CRUZ<<MARIA<<<<<<<<<<<<<<<<<<<<<<": {"DE LA CRUZ", "MARIA"},
		"P<UTOERIKSSON<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<": {"ERIKSSON", ""},
		"P<UTOERIKSSON<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<A": {"ERIKSSON", "A"},
		"P<UTOVERYLONGSURNAMEINDEEDEXCEEDINGTHEFIELDS": {"VERYLONGSURNAMEINDEEDEXCEEDINGTHEFIELDS", ""},
		"P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<": {"MUSTERMANN", "ERIKA"},
	} {
		d, err := Parse(upper+"\n"+td3Lower, beforeExpiry)
		if err != nil {
			t.Errorf("%s: %v", upper, err)
			continue
		}
		if d.Surname != want[0] || d.GivenNames != want[1] {
			t.Errorf("%s: %q %q, want %q", upper, d.Surname, d.GivenNames, want)
		}
	}
	d, _ := Parse("P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<\n"+td3Lower, beforeExpiry)
	if d.IssuingState != "D" {
		t.Errorf("issuing state %q, want D", d.IssuingState)
	}
}

func TestSexAndOptional(t *testing.T) {
	for c, want := range map[string]string{"M": "M", "F": "F", "<": "X", "X": "X"} {
		d, err := Parse(fix(t, strings.Replace(td3, "2F12", "2"+c+"12", 1)), beforeExpiry)
		if err != nil || d.Sex != want {
			t.Errorf("sex %s: %q, %v", c, d.Sex, err)
		}
	}
	// An empty personal number may have '<' or '0' as its check digit.
	for _, digit := range []string{"<", "0"} {
		lower := "L898902C36UTO7408122F1204159<<<<<<<<<<<<<<" + digit + "0"
		d, err := Parse(fix(t, td3Upper+"\n"+lower), beforeExpiry)
		if err != nil || d.OptionalData != "" {
			t.Errorf("empty personal number with %s: %+v, %v", digit, d, err)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Fields: map[string]string{"number": "a", "composite": "b"}}
	if got, want := e.Error(), "invalid MRZ: composite: b; number: a"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{td3, td1, td2, strings.ToLower(td3), td3Upper + "\r\n" + td3Lower,
		"I<UTOD23145890<7349<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<",
		"", "\n", "<<<<", td3Upper} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		d, err := Parse(text, today)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || len(e.Fields) == 0 {
				t.Fatalf("error %v is not an *Error with fields", err)
			}
			if d != (Document{}) {
				t.Fatalf("document %+v returned with error", d)
			}
			return
		}
		if d.Format != TD1 && d.Format != TD2 && d.Format != TD3 {
			t.Fatalf("format %q", d.Format)
		}
		if d.Number == "" || d.Surname == "" || d.IssuingState == "" || d.Nationality == "" {
			t.Fatalf("accepted with empty fields: %+v", d)
		}
		if _, err := time.Parse(time.DateOnly, d.ExpiryDate); err != nil {
			t.Fatalf("expiry %q: %v", d.ExpiryDate, err)
		}
		if d.ExpiryDate < today.Format(time.DateOnly) {
			t.Fatalf("expired document accepted: %s", d.ExpiryDate)
		}
	})
}
