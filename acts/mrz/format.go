package mrz

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FormatTD3 writes a passport's two-line machine-readable zone from its
// fields, computing every check digit. It is the inverse of Parse for TD3
// and serves tests, training data and specimens. Dates are YYYY-MM-DD.
func FormatTD3(d Document) (string, error) {
	pad := func(s string, n int) (string, error) {
		s = strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), " ", "<"))
		if len(s) > n {
			return "", fmt.Errorf("mrz: %q is longer than %d characters", s, n)
		}
		for _, r := range s {
			if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '<') {
				return "", fmt.Errorf("mrz: %q holds %q, which an MRZ cannot", s, r)
			}
		}
		return s + strings.Repeat("<", n-len(s)), nil
	}
	date := func(s string) (string, error) {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			return "", fmt.Errorf("mrz: date %q: %w", s, err)
		}
		return t.Format("060102"), nil
	}
	cd := func(s string) string { return strconv.Itoa(CheckDigit(s)) }
	typ := d.Type
	if typ == "" {
		typ = "P"
	}
	name := strings.ReplaceAll(strings.TrimSpace(d.Surname), " ", "<") + "<<" + strings.ReplaceAll(strings.TrimSpace(d.GivenNames), " ", "<")
	var (
		errs                                     []error
		line1, num, nat, birth, expiry, personal string
		err                                      error
	)
	head, err := pad(typ, 2)
	errs = append(errs, err)
	state, err := pad(d.IssuingState, 3)
	errs = append(errs, err)
	line1, err = pad(head+state+name, 44)
	errs = append(errs, err)
	num, err = pad(d.Number, 9)
	errs = append(errs, err)
	nat, err = pad(d.Nationality, 3)
	errs = append(errs, err)
	birth, err = date(d.BirthDate)
	errs = append(errs, err)
	expiry, err = date(d.ExpiryDate)
	errs = append(errs, err)
	personal, err = pad(d.OptionalData, 14)
	errs = append(errs, err)
	sex := d.Sex
	if sex == "" || sex == "X" {
		sex = "<"
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	composite := num + cd(num) + birth + cd(birth) + expiry + cd(expiry) + personal + cd(personal)
	line2 := num + cd(num) + nat + birth + cd(birth) + sex + expiry + cd(expiry) + personal + cd(personal) + cd(composite)
	return line1 + "\n" + line2, nil
}
