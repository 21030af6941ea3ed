package pades

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chamber-court/chamber/internal/testenv"
	"github.com/chamber-court/chamber/pki"
	"github.com/digitorus/pdf"
	"github.com/digitorus/pdfsign/sign"
)

// The benchmarks run Chamber and pdfsign's own command-line tool (built
// from the pinned module) as separate processes on the same files, so
// that both pay for reading the input and writing the output, and report
// each process's peak resident memory next to its time:
//
//	go test -run '^$' -bench . -benchtime 3x ./documents/pades/
//
// Chamber's side is the small program in internal/padesbench, built the
// same way as the CLI, so neither pays for the other's start-up: a test
// binary carries the test framework and every test dependency.

type benchEnv struct {
	dir      string
	cli      string // pdfsign CLI
	chamber  string // internal/padesbench
	cert     string // RSA signer certificate (PEM)
	key      string // its PKCS#1 key, as the CLI wants
	caFile   string
	tsaURL   string
	inputs   map[string]string // size label → file
	p        *testPKI
	labels   []string
	verifyIn map[string]string // size label → signed file
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	goBin := testenv.Command(b, "go")
	e := &benchEnv{dir: b.TempDir(), inputs: map[string]string{}, verifyIn: map[string]string{}, p: newTestPKI(b)}
	e.cli = filepath.Join(e.dir, "pdfsign")
	if out, err := exec.Command(goBin, "build", "-o", e.cli, "github.com/digitorus/pdfsign").CombinedOutput(); err != nil {
		b.Fatalf("building the pdfsign CLI: %v\n%s", err, out)
	}
	e.chamber = filepath.Join(e.dir, "padesbench")
	if out, err := exec.Command(goBin, "build", "-o", e.chamber, "github.com/chamber-court/chamber/documents/pades/internal/padesbench").CombinedOutput(); err != nil {
		b.Fatalf("building padesbench: %v\n%s", err, out)
	}
	e.tsaURL = e.p.srv.URL + "/tsa"

	// pdfsign's CLI reads only PKCS#1 RSA keys: both sides sign with the
	// same RSA-2048 identity from a throwaway CA.
	caKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "bench signer"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	cert, _ := x509.ParseCertificate(der)
	e.cert, e.key, e.caFile = filepath.Join(e.dir, "cert.pem"), filepath.Join(e.dir, "key.pem"), filepath.Join(e.dir, "ca.pem")
	os.WriteFile(e.cert, pki.CertificatePEM(cert), 0o644)
	os.WriteFile(e.key, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	os.WriteFile(e.caFile, pki.CertificatePEM(ca, e.p.auth.Root()), 0o644)

	for _, s := range []struct {
		label string
		size  int
	}{{"100KB", 100 << 10}, {"10MB", 10 << 20}, {"100MB", 100 << 20}} {
		f := filepath.Join(e.dir, s.label+".pdf")
		if err := os.WriteFile(f, genPDF(3, s.size, false), 0o644); err != nil {
			b.Fatal(err)
		}
		e.inputs[s.label] = f
		e.labels = append(e.labels, s.label)
	}
	return e
}

// run starts a process under GNU time, waits for it and returns its peak
// RSS in MiB. (The rusage of a direct child is no good: Linux carries the
// parent's high-water mark across fork and exec, and this benchmark
// process holds the 100 MB input.)
func run(b *testing.B, cmd *exec.Cmd, mustSucceed bool) (float64, []byte) {
	b.Helper()
	rssFile := filepath.Join(b.TempDir(), "rss")
	timeBin := testenv.Command(b, "time")
	wrapped := exec.Command(timeBin, append([]string{"-f", "%M", "-o", rssFile, cmd.Path}, cmd.Args[1:]...)...)
	wrapped.Env = cmd.Env
	out, err := wrapped.CombinedOutput()
	if err != nil && mustSucceed {
		b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
	raw, _ := os.ReadFile(rssFile)
	lines := bytes.Split(bytes.TrimSpace(raw), []byte("\n"))
	kb, perr := strconv.ParseFloat(string(lines[len(lines)-1]), 64)
	if perr != nil {
		b.Fatalf("GNU time output %q", raw)
	}
	return kb / 1024, out
}

func (e *benchEnv) helper(mode, in, out string) *exec.Cmd {
	cmd := exec.Command(e.chamber)
	cmd.Env = append(os.Environ(), "BENCH_MODE="+mode, "BENCH_IN="+in, "BENCH_OUT="+out,
		"BENCH_CERT="+e.cert, "BENCH_KEY="+e.key, "BENCH_CA="+e.caFile, "BENCH_TSA="+e.tsaURL)
	return cmd
}

func BenchmarkSign(b *testing.B) {
	e := newBenchEnv(b)
	for _, label := range e.labels {
		in := e.inputs[label]
		out := filepath.Join(e.dir, label+"-out.pdf")
		variants := []struct {
			name string
			cmds func() []*exec.Cmd
		}{
			{"pdfsign-cli", func() []*exec.Cmd {
				return []*exec.Cmd{exec.Command(e.cli, "sign", "-certType", "ApprovalSignature", "-tsa", e.tsaURL, "-name", "bench", in, out, e.cert, e.key)}
			}},
			{"chamber", func() []*exec.Cmd { return []*exec.Cmd{e.helper("sign", in, out)} }},
			{"pdfsign-cli+doc-timestamp", func() []*exec.Cmd {
				mid := out + ".mid.pdf"
				return []*exec.Cmd{
					exec.Command(e.cli, "sign", "-certType", "ApprovalSignature", "-tsa", e.tsaURL, "-name", "bench", in, mid, e.cert, e.key),
					exec.Command(e.cli, "sign", "-certType", "TimeStampSignature", "-tsa", e.tsaURL, mid, out),
				}
			}},
			{"chamber-lta", func() []*exec.Cmd { return []*exec.Cmd{e.helper("sign-lta", in, out)} }},
		}
		for _, v := range variants {
			b.Run(label+"/"+v.name, func(b *testing.B) {
				var peak float64
				for b.Loop() {
					for _, c := range v.cmds() {
						rss, _ := run(b, c, true)
						peak = max(peak, rss)
					}
				}
				b.ReportMetric(peak, "peak-RSS-MiB")
				fi, _ := os.Stat(in)
				b.ReportMetric(peak/(float64(fi.Size())/(1<<20)), "RSS/size")
			})
		}
		e.verifyIn[label] = out // the B-LTA output of the last variant
	}
	benchVerify(b, e)
}

func benchVerify(b *testing.B, e *benchEnv) {
	for _, label := range e.labels {
		in := e.verifyIn[label]
		b.Run(label+"/verify/pdfsign-cli", func(b *testing.B) {
			var peak float64
			for b.Loop() {
				// It exits non-zero: the bench CA is not a system root.
				rss, out := run(b, exec.Command(e.cli, "verify", in), false)
				if !bytes.Contains(out, []byte("bench signer")) {
					b.Fatalf("pdfsign verify:\n%s", out)
				}
				peak = max(peak, rss)
			}
			b.ReportMetric(peak, "peak-RSS-MiB")
		})
		b.Run(label+"/verify/chamber", func(b *testing.B) {
			var peak float64
			for b.Loop() {
				rss, _ := run(b, e.helper("verify", in, ""), true)
				peak = max(peak, rss)
			}
			b.ReportMetric(peak, "peak-RSS-MiB")
		})
	}
}

// BenchmarkSignInProcess measures what a server pays per request, without
// process start-up: Chamber's Sign against pdfsign's library call that its
// CLI makes (sign.Sign with the TSA URL), same identity, same TSA.
func BenchmarkSignInProcess(b *testing.B) {
	p := newTestPKI(b)
	seal := p.auth.Seal()
	for _, s := range []struct {
		label string
		size  int
	}{{"100KB", 100 << 10}, {"10MB", 10 << 20}} {
		in := genPDF(3, s.size, false)
		b.Run(s.label+"/pdfsign-library", func(b *testing.B) {
			for b.Loop() {
				rdr, err := pdf.NewReader(bytes.NewReader(in), int64(len(in)))
				if err != nil {
					b.Fatal(err)
				}
				err = sign.Sign(bytes.NewReader(in), io.Discard, rdr, int64(len(in)), sign.SignData{
					Signature:         sign.SignDataSignature{CertType: sign.ApprovalSignature, DocMDPPerm: sign.AllowFillingExistingFormFieldsAndSignaturesPerms},
					Signer:            seal.Key,
					DigestAlgorithm:   crypto.SHA256,
					Certificate:       seal.Certificate,
					CertificateChains: [][]*x509.Certificate{append([]*x509.Certificate{seal.Certificate}, seal.Chain...)},
					TSA:               sign.TSA{URL: p.tsa.URL},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(s.label+"/chamber", func(b *testing.B) {
			for b.Loop() {
				_, err := Sign(context.Background(), bytes.NewReader(in), int64(len(in)), io.Discard, SignOptions{
					Signer: seal.AsSigner(), Kind: Approval, Permissions: FormFillingAndSigning, Timestamper: p.tsa,
				})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
