package mrz

import (
	"testing"
	"time"
)

func TestFormatTD3RoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	in := Document{Type: "P", IssuingState: "EST", Surname: "TAMM", GivenNames: "MARI ANNE", Number: "K0123456",
		Nationality: "EST", BirthDate: "1985-03-15", Sex: "F", ExpiryDate: "2031-03-14", OptionalData: "38503150123"}
	text, err := FormatTD3(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(text, now)
	if err != nil {
		t.Fatalf("Parse(FormatTD3) = %v\n%s", err, text)
	}
	in.Format = TD3
	if got != in {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
	}
	// The ICAO specimen comes out digit for digit.
	spec, err := FormatTD3(Document{Type: "P", IssuingState: "UTO", Surname: "ERIKSSON", GivenNames: "ANNA MARIA", Number: "L898902C3",
		Nationality: "UTO", BirthDate: "1974-08-12", Sex: "F", ExpiryDate: "2012-04-15", OptionalData: "ZE184226B"})
	if err != nil || spec != td3Upper+"\n"+td3Lower {
		t.Fatalf("specimen:\n%s\n%v", spec, err)
	}
	if _, err := FormatTD3(Document{Surname: "Ö", BirthDate: "1985-03-15", ExpiryDate: "2031-01-01"}); err == nil {
		t.Fatal("a non-MRZ character was accepted")
	}
}
