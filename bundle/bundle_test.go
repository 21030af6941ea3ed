package bundle

import (
	"archive/zip"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"testing"

	"github.com/chamber-court/chamber/journal"
)

// FuzzVerify: whatever zip arrives, Verify answers with an error or a
// report and never panics or runs away.
func FuzzVerify(f *testing.F) {
	mk := func(files map[string]string) []byte {
		var b bytes.Buffer
		zw := zip.NewWriter(&b)
		for name, body := range files {
			w, _ := zw.Create(name)
			w.Write([]byte(body))
		}
		zw.Close()
		return b.Bytes()
	}
	f.Add(mk(map[string]string{ManifestName: `{"version":1,"files":[{"path":"a","sha256":"00","size":1}]}`, "a": "x"}))
	f.Add(mk(map[string]string{ManifestName: `{}`, SignatureName: "\x30\x03\x02\x01\x01", JournalName: `{"entries":[{"seq":1}]}`}))
	f.Add(mk(map[string]string{ManifestName: `not json`}))
	f.Add([]byte("PK\x03\x04 broken"))
	roots := x509.NewCertPool()
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Verify(bytes.NewReader(data), int64(len(data)), roots)
		if err == nil && rep.Valid {
			t.Fatal("an unsigned bundle verified")
		}
	})
}

// TestChatMessagesTakeAnyDetails: a chat entry whose details are not an
// object is kept in its place, not a panic.
func TestChatMessagesTakeAnyDetails(t *testing.T) {
	entries := []journal.Entry{
		{Seq: 1, Action: "chat.message", Details: json.RawMessage(`{"text":"hello"}`)},
		{Seq: 2, Action: "chat.message", Details: json.RawMessage(`null`)},
		{Seq: 3, Action: "chat.message", Details: json.RawMessage(`[1]`)},
		{Seq: 4, Action: "participant.joined", Details: json.RawMessage(`{}`)},
	}
	got := chatMessages(entries)
	if len(got) != 3 || got[0]["text"] != "hello" || got[1]["seq"] != int64(2) || got[2]["seq"] != int64(3) {
		t.Fatalf("chat messages: %v", got)
	}
}
