// Package mrz parses and validates the machine-readable zone of travel
// documents as defined by ICAO Doc 9303: TD1 identity cards (3 lines of 30
// characters), TD2 cards (2 lines of 36) and TD3 passports (2 lines of 44).
//
// Parse checks the layout, every check digit (document number, birth date,
// expiry date, TD3 personal number and the composite) and the expiry date,
// and reports every problem it finds at once, keyed by field, so an officer
// typing or scanning an MRZ sees everything that is wrong.
package mrz

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Formats of the machine-readable zone.
const (
	TD1 = "TD1" // identity card: 3 lines of 30 characters
	TD2 = "TD2" // card: 2 lines of 36 characters
	TD3 = "TD3" // passport: 2 lines of 44 characters
)

// Document holds the fields of a valid machine-readable zone. Dates are ISO
// 8601 calendar dates ("2012-04-15"); a birth date whose day or month the
// issuer marked unknown ("<<") is shortened to "1974-08" or "1974".
// Fillers are removed: names use single spaces, codes lose their trailing '<'.
type Document struct {
	Format       string `json:"format"`          // TD1, TD2 or TD3
	Type         string `json:"type"`            // document code: "P", "ID", "I", "AC", …
	Number       string `json:"number"`          // document number, including a TD1/TD2 overflow
	IssuingState string `json:"issuing_state"`   // ICAO code of the issuing state or organisation ("UTO", "D")
	Surname      string `json:"surname"`         // primary identifier
	GivenNames   string `json:"given_names"`     // secondary identifier; empty when the name has none
	Nationality  string `json:"nationality"`     // ICAO code
	BirthDate    string `json:"birth_date"`      // YYYY-MM-DD (or YYYY-MM, YYYY when the issuer left parts unknown)
	Sex          string `json:"sex"`             // "M", "F" or "X" (unspecified, written '<' or 'X')
	ExpiryDate   string `json:"expiry_date"`     // YYYY-MM-DD
	OptionalData string `json:"optional_data"`   // TD3 personal number, TD2 optional data, TD1 upper-line optional data
	Optional2    string `json:"optional_data_2"` // TD1 middle-line optional data; empty for TD2 and TD3
}

// Error is returned for an MRZ that cannot be accepted. Fields maps each
// offending field (by its JSON name in Document, or "mrz" for the layout,
// "composite" for the composite check digit) to what is wrong with it.
type Error struct {
	Fields map[string]string
}

// Error lists the problems in a stable order.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("invalid MRZ")
	for i, k := range slices.Sorted(maps.Keys(e.Fields)) {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(k + ": " + e.Fields[k])
	}
	return b.String()
}

// Expired reports whether the document's only fault is that it has expired,
// so that callers can word their message for the officer.
func (e *Error) Expired() bool {
	return len(e.Fields) == 1 && strings.HasPrefix(e.Fields["expiry_date"], "document expired")
}

// Parse parses text as a TD1, TD2 or TD3 machine-readable zone and validates
// it against now: the document must not have expired before now's calendar
// day (in now's location). Lines are separated by "\n" or "\r\n"; whitespace
// around the whole text and around each line is ignored, as is letter case
// (desk readers that type like a keyboard may send lower case). Nothing else
// is tolerated. On failure the error is an *Error and the Document is zero.
func Parse(text string, now time.Time) (Document, error) {
	lines, problem := split(text)
	if problem != "" {
		return Document{}, &Error{Fields: map[string]string{"mrz": problem}}
	}
	p := parser{fields: map[string]string{}, now: now}
	var d Document
	switch len(lines[0]) {
	case 30:
		d = p.td1(lines)
	case 36:
		d = p.td2or3(TD2, lines)
	default:
		d = p.td2or3(TD3, lines)
	}
	if len(p.fields) > 0 {
		return Document{}, &Error{Fields: p.fields}
	}
	return d, nil
}

// split normalises the text and checks the shape of the zone. It returns
// the upper-cased lines, or a description of what is wrong.
func split(text string) ([]string, string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, "empty"
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = strings.ToUpper(strings.TrimSpace(l))
	}
	for i, l := range lines {
		col := 0
		for _, r := range l {
			col++
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '<') {
				return nil, fmt.Sprintf("line %d, position %d: character %q is not allowed (only A-Z, 0-9 and <)", i+1, col, r)
			}
		}
	}
	lengths := make([]string, len(lines))
	for i, l := range lines {
		lengths[i] = fmt.Sprint(len(l))
	}
	shape := func() string {
		return fmt.Sprintf("expected 3 lines of 30 characters (TD1), 2 of 36 (TD2) or 2 of 44 (TD3); got %d line(s) of %s characters",
			len(lines), strings.Join(lengths, ", "))
	}
	want := map[int]int{30: 3, 36: 2, 44: 2}[len(lines[0])]
	if want != len(lines) {
		return nil, shape()
	}
	for _, l := range lines {
		if len(l) != len(lines[0]) {
			return nil, shape()
		}
	}
	return lines, ""
}

type parser struct {
	fields map[string]string
	now    time.Time
}

func (p *parser) fail(field, format string, args ...any) {
	if _, ok := p.fields[field]; !ok { // keep the first, most specific problem
		p.fields[field] = fmt.Sprintf(format, args...)
	}
}

// td2or3 parses the two-line formats, which share the lower line's layout
// up to the optional data.
func (p *parser) td2or3(format string, l []string) Document {
	d := Document{Format: format}
	upper, lower := l[0], l[1]
	d.Type = p.docType(upper[0:2])
	p.family(format, d.Type)
	d.IssuingState = p.code("issuing_state", upper[2:5])
	d.Surname, d.GivenNames = p.name(upper[5:])

	end := len(lower) - 1 // composite check digit position
	optional := lower[28:end]
	if format == TD3 {
		optional = lower[28:42]
	}
	d.Number, optional = p.number(lower[0:9], lower[9], optional, format == TD2)
	d.Nationality = p.code("nationality", lower[10:13])
	d.BirthDate = p.birthDate(lower[13:19], lower[19])
	d.Sex = p.sex(lower[20])
	d.ExpiryDate = p.expiryDate(lower[21:27], lower[27])
	if format == TD3 {
		// The personal number's check digit may be '<' when the field is empty.
		if lower[42] != '<' || strings.Trim(lower[28:42], "<") != "" {
			p.check("optional_data", lower[28:42], lower[42])
		}
	}
	d.OptionalData = strings.TrimRight(optional, "<")
	p.check("composite", lower[0:10]+lower[13:20]+lower[21:end], lower[end])
	return d
}

func (p *parser) td1(l []string) Document {
	d := Document{Format: TD1}
	d.Type = p.docType(l[0][0:2])
	p.family(TD1, d.Type)
	d.IssuingState = p.code("issuing_state", l[0][2:5])
	var optional string
	d.Number, optional = p.number(l[0][5:14], l[0][14], l[0][15:30], true)
	d.OptionalData = strings.TrimRight(optional, "<")
	d.BirthDate = p.birthDate(l[1][0:6], l[1][6])
	d.Sex = p.sex(l[1][7])
	d.ExpiryDate = p.expiryDate(l[1][8:14], l[1][14])
	d.Nationality = p.code("nationality", l[1][15:18])
	d.Optional2 = strings.TrimRight(l[1][18:29], "<")
	p.check("composite", l[0][5:30]+l[1][0:7]+l[1][8:15]+l[1][18:29], l[1][29])
	d.Surname, d.GivenNames = p.name(l[2])
	return d
}

func (p *parser) docType(s string) string {
	t := strings.TrimRight(s, "<")
	switch {
	case t == "" || !isLetter(t[0]):
		p.fail("type", "document code %q must start with a letter", s)
	case t[0] == 'V':
		p.fail("type", "machine-readable visas (document code %q) are not identity documents", t)
	case len(t) == 2 && !isLetter(t[1]):
		p.fail("type", "document code %q must be letters", s)
	}
	return t
}

// family checks the document code's first letter against the format:
// passports (P) are TD3; identity cards and other official travel documents
// (A, C, I) are TD1 or TD2.
func (p *parser) family(format, t string) {
	if _, bad := p.fields["type"]; t == "" || bad {
		return
	}
	if format == TD3 && t[0] != 'P' {
		p.fail("type", "document code %q is not a passport code (P…), which TD3 requires", t)
	}
	if format != TD3 && t[0] != 'A' && t[0] != 'C' && t[0] != 'I' {
		p.fail("type", "document code %q is not an A, C or I code, which %s requires", t, format)
	}
}

// code validates a three-letter ICAO state code padded with '<' ("D<<").
func (p *parser) code(field, s string) string {
	t := strings.TrimRight(s, "<")
	if t == "" {
		p.fail(field, "missing")
		return ""
	}
	for i := 0; i < len(t); i++ {
		if !isLetter(t[i]) {
			p.fail(field, "%q is not a state code (letters only)", s)
			return ""
		}
	}
	return t
}

// name splits the name field into the primary and secondary identifiers.
func (p *parser) name(s string) (surname, given string) {
	s = strings.TrimRight(s, "<")
	if s == "" {
		p.fail("surname", "missing")
		return "", ""
	}
	for i := 0; i < len(s); i++ {
		if !isLetter(s[i]) && s[i] != '<' {
			p.fail("surname", "the name field may hold only letters and <")
			return "", ""
		}
	}
	primary, secondary, _ := strings.Cut(s, "<<")
	words := func(s string) string {
		return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '<' }), " ")
	}
	surname, given = words(primary), words(secondary)
	if surname == "" {
		// Some states leave the primary identifier empty ("<<NAME");
		// Doc 9303 then puts the whole name in the primary identifier, so
		// an empty one is malformed.
		p.fail("surname", "missing")
	}
	return surname, given
}

// number returns the document number, following an overflow into the
// optional data when the check digit position holds '<' (TD1 and TD2, Doc
// 9303 parts 5 and 6: the number's remaining characters start the optional
// data, followed by the check digit and a filler). It returns the optional
// data that remains after the overflow. TD3 has no such provision (part 4):
// a '<' there is a missing check digit.
func (p *parser) number(principal string, digit byte, optional string, overflow bool) (number, rest string) {
	if digit != '<' || !overflow {
		n := strings.TrimRight(principal, "<")
		if n == "" {
			p.fail("number", "missing")
		}
		if strings.Contains(n, "<") {
			p.fail("number", "%q has a filler inside the number", principal)
		}
		p.check("number", principal, digit)
		return n, optional
	}
	if strings.Contains(principal, "<") {
		p.fail("number", "check digit is '<' (long number) but the first nine characters %q are not all used", principal)
		return "", optional
	}
	end := strings.IndexByte(optional, '<')
	if end < 2 {
		p.fail("number", "check digit is '<' but the optional data holds no continuation of the number and its check digit")
		return "", optional
	}
	full := principal + optional[:end-1]
	p.check("number", full, optional[end-1])
	return full, optional[end+1:]
}

func (p *parser) birthDate(s string, digit byte) string {
	p.check("birth_date", s, digit)
	yy, mm, dd, ok := fields(s)
	// Doc 9303 lets issuers write an unknown day, or unknown day and month,
	// as "<<" in birth dates (not in expiry dates).
	if !ok || yy < 0 || mm < 0 && dd >= 0 || mm >= 0 && (mm < 1 || mm > 12) || dd == 0 || dd > 31 {
		p.fail("birth_date", "%q is not a date (YYMMDD)", s)
		return ""
	}
	// The most recent year ending in yy whose date is not in the future:
	// holders were born within the century before now. Unknown parts count
	// as the earliest possible.
	today := civil(p.now)
	year := today.year - (today.year%100-yy+100)%100
	if (civilDate{year, max(mm, 1), max(dd, 1)}).after(today) {
		year -= 100
	}
	switch {
	case mm < 0:
		return fmt.Sprintf("%04d", year)
	case dd < 0:
		return fmt.Sprintf("%04d-%02d", year, mm)
	case !validDay(year, mm, dd):
		p.fail("birth_date", "%q is not a date (YYMMDD)", s)
		return ""
	}
	return civilDate{year, mm, dd}.String()
}

func (p *parser) expiryDate(s string, digit byte) string {
	p.check("expiry_date", s, digit)
	yy, mm, dd, ok := fields(s)
	if !ok || yy < 0 || mm < 1 || mm > 12 || dd < 1 {
		p.fail("expiry_date", "%q is not a date (YYMMDD)", s)
		return ""
	}
	// The year ending in yy within 50 years either side of now: documents
	// expired long ago and documents valid for decades both resolve.
	today := civil(p.now)
	year := today.year - today.year%100 + yy
	switch {
	case year >= today.year+50:
		year -= 100
	case year < today.year-50:
		year += 100
	}
	date := civilDate{year, mm, dd}
	if !validDay(year, mm, dd) {
		p.fail("expiry_date", "%q is not a date (YYMMDD)", s)
		return ""
	}
	if today.after(date) {
		p.fail("expiry_date", "document expired on %s", date)
	}
	return date.String()
}

func (p *parser) sex(c byte) string {
	switch c {
	case 'M', 'F':
		return string(c)
	case '<', 'X':
		return "X"
	}
	p.fail("sex", "%q is not M, F, X or <", rune(c))
	return ""
}

// check validates a check digit and records a mismatch.
func (p *parser) check(field, data string, digit byte) {
	want := CheckDigit(data)
	if digit < '0' || digit > '9' {
		p.fail(field, "check digit %q is not a digit (computed %d)", rune(digit), want)
		return
	}
	if int(digit-'0') != want {
		p.fail(field, "check digit %c does not match computed %d", digit, want)
	}
}

// CheckDigit computes the Doc 9303 check digit of s: the sum of the
// character values (digits as themselves, A=10 … Z=35, '<' and anything
// else 0) weighted 7, 3, 1 repeating, modulo 10.
func CheckDigit(s string) int {
	weights := [3]int{7, 3, 1}
	sum := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		v := 0
		switch {
		case c >= '0' && c <= '9':
			v = int(c - '0')
		case c >= 'A' && c <= 'Z':
			v = int(c-'A') + 10
		}
		sum += v * weights[i%3]
	}
	return sum % 10
}

// fields splits YYMMDD into numbers; a part written "<<" is -1.
func fields(s string) (yy, mm, dd int, ok bool) {
	var v [3]int
	for i := range v {
		a, b := s[2*i], s[2*i+1]
		switch {
		case a == '<' && b == '<':
			v[i] = -1
		case a >= '0' && a <= '9' && b >= '0' && b <= '9':
			v[i] = int(a-'0')*10 + int(b-'0')
		default:
			return 0, 0, 0, false
		}
	}
	return v[0], v[1], v[2], true
}

func isLetter(c byte) bool { return c >= 'A' && c <= 'Z' }

func validDay(year, month, day int) bool {
	if month < 1 || month > 12 || day < 1 {
		return false
	}
	return day <= time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

type civilDate struct{ year, month, day int }

func civil(t time.Time) civilDate {
	y, m, d := t.Date()
	return civilDate{y, int(m), d}
}

func (a civilDate) after(b civilDate) bool {
	if a.year != b.year {
		return a.year > b.year
	}
	if a.month != b.month {
		return a.month > b.month
	}
	return a.day > b.day
}

func (a civilDate) String() string { return fmt.Sprintf("%04d-%02d-%02d", a.year, a.month, a.day) }
