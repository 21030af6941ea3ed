package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// EnvSoftHSMModule is the path of SoftHSM2's PKCS#11 module, exported by
// scripts/test.
const EnvSoftHSMModule = "CHAMBER_TEST_SOFTHSM_MODULE"

// SoftHSM is a SoftHSM2 installation of the test's own: its tokens live in
// a temporary directory and vanish with the test.
type SoftHSM struct {
	// Module is the PKCS#11 module to load.
	Module string
	util   string
	dir    string
}

// NewSoftHSM points SoftHSM2 (SOFTHSM2_CONF) at a fresh token directory for
// the rest of the test. It uses t.Setenv, so the test must not be
// parallel. SoftHSM2 missing skips the test, or fails it under CI=true.
func NewSoftHSM(t testing.TB) *SoftHSM {
	t.Helper()
	module := os.Getenv(EnvSoftHSMModule)
	if module == "" {
		module = "/usr/lib/softhsm/libsofthsm2.so"
	}
	if _, err := os.Stat(module); err != nil {
		missing(t, "SoftHSM2's PKCS#11 module ("+EnvSoftHSMModule+")")
	}
	h := &SoftHSM{Module: module, util: Command(t, "softhsm2-util"), dir: t.TempDir()}
	tokens := filepath.Join(h.dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(h.dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokens+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, ok := t.(interface{ Setenv(string, string) }); ok {
		s.Setenv("SOFTHSM2_CONF", conf)
	} else {
		t.Fatal("testenv: NewSoftHSM needs a *testing.T or *testing.B")
	}
	return h
}

// InitToken initialises a token with a label, a user PIN and an SO PIN
// in the next free slot.
func (h *SoftHSM) InitToken(t testing.TB, label, pin string) {
	t.Helper()
	out, err := exec.Command(h.util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin+"-so").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
}
