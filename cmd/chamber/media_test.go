package main

import "testing"

func TestAllowPrivateCandidatesDefault(t *testing.T) {
	for _, c := range []struct {
		publicURL string
		flag      string // "" = not given
		want      bool
	}{
		{"http://localhost:8080", "", true},
		{"http://127.0.0.1:8080", "", true},
		{"http://[::1]:8080", "", true},
		{"https://court.internal.localhost", "", true},
		{"http://192.168.1.20:8080", "", true},
		{"http://10.0.0.5", "", true},
		{"https://court.example", "", false},
		{"https://203.0.113.9", "", false},
		{"https://court.example", "true", true},
		{"http://localhost:8080", "false", false},
		{"::not a url", "", false},
	} {
		var m mediaConfig
		if c.flag != "" {
			if err := m.allowPrivateCandidates.Set(c.flag); err != nil {
				t.Fatal(err)
			}
		}
		cfg := m.signalingConfig(c.publicURL)
		if cfg.AllowPrivateCandidates == nil || *cfg.AllowPrivateCandidates != c.want {
			t.Errorf("--public-url %s, flag %q: allow private candidates %v, want %v", c.publicURL, c.flag, cfg.AllowPrivateCandidates, c.want)
		}
	}
}
