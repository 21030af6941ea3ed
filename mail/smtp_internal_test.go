package mail

import "testing"

// Only a server on this machine may be reached without TLS: anywhere
// else STARTTLS is required.
func TestLoopbackOnlyMayBePlain(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.2": true, "::1": true, "localhost": true,
		"mail.example.org": false, "192.0.2.10": false, "localhost.example.org": false, "::ffff:192.0.2.1": false,
	} {
		if got := (SMTPConfig{Host: host}).loopback(); got != want {
			t.Errorf("%s: loopback = %v", host, got)
		}
	}
}
