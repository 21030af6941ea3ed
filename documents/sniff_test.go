package documents

import (
	"os"
	"testing"
)

func TestSniff(t *testing.T) {
	tests := []struct {
		name string
		head string
		want string
	}{
		{"pdf", "%PDF-1.7\n%\xe2\xe3\xcf\xd3", TypePDF},
		{"jpeg", "\xff\xd8\xff\xe0\x00\x10JFIF", TypeJPEG},
		{"png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", TypePNG},
		{"webm", "\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08\x42\x82\x84webm", TypeWebM},
		{"matroska is not webm", "\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x88matroska", ""},
		{"mp4", "\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", TypeMP4},
		{"ogg", "OggS\x00\x02\x00\x00", TypeOgg},
		{"text", "Witness statement\nof Mari Tamm\n", TypeText},
		{"utf-8 text", "Õiguskantsler ütles: „jah“.", TypeText},
		{"text cut mid-rune", "abc\xc3", TypeText},
		{"binary", "MZ\x90\x00\x03", ""},
		{"nul in text", "abc\x00def", ""},
		{"invalid utf-8", "abc\xff\xfedef", ""},
		{"empty", "", ""},
		{"html is text but named", "<html><script>alert(1)</script>", TypeText},
	}
	for _, tt := range tests {
		if got := Sniff([]byte(tt.head)); got != tt.want {
			t.Errorf("%s: Sniff = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestClaimedType(t *testing.T) {
	tests := []struct{ ct, name, want string }{
		{"application/pdf", "x.bin", TypePDF},
		{"application/octet-stream", "x.pdf", TypePDF},
		{"", "PHOTO.JPEG", TypeJPEG},
		{"image/jpg", "", TypeJPEG},
		{"text/plain; charset=utf-8", "a", TypeText},
		{"", "noext", ""},
		{"audio/ogg", "", TypeOgg},
	}
	for _, tt := range tests {
		if got := claimedType(tt.ct, tt.name); got != tt.want {
			t.Errorf("claimedType(%q, %q) = %q, want %q", tt.ct, tt.name, got, tt.want)
		}
	}
}

// FuzzSniff: outside bytes never crash the sniffer, and whatever it
// accepts is one of the accepted types.
func FuzzSniff(f *testing.F) {
	for _, seed := range []string{"%PDF-1.4", "\xff\xd8\xff", "\x89PNG\r\n\x1a\n", "OggS", "hello", "\x1a\x45\xdf\xa3webm"} {
		f.Add([]byte(seed))
	}
	if b, err := os.ReadFile("pades/testdata/libreoffice-will.pdf"); err == nil {
		f.Add(b[:min(len(b), sniffLen)])
	}
	f.Fuzz(func(t *testing.T, head []byte) {
		switch got := Sniff(head); got {
		case "", TypePDF, TypeJPEG, TypePNG, TypeWebM, TypeMP4, TypeOgg, TypeText:
		default:
			t.Fatalf("Sniff returned %q", got)
		}
		_ = claimedType(string(head), string(head))
	})
}
