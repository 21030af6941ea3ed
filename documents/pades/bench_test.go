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
//	go test -run '^$' -bench 'BenchmarkSign$' -benchtime 5x -count 2 ./documents/pades/
//
// Chamber's side is the small program in internal/padesbench, built the
// same way as the CLI, so neither pays for the other's start-up: a test
// binary carries the test framework and every test dependency.

type benchEnv struct {
	dir     string
	cli     string // pdfsign CLI
	chamber string // internal/padesbench
	cert    string // RSA signer certificate (PEM)
	key     string // its PKCS#1 key, as the CLI wants
	caFile  string
	tsaURL  string
	inputs  map[string]string // size label → file
	p       *testPKI
	labels  []string
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	goBin := testenv.Command(b, "go")
	e := &benchEnv{dir: b.TempDir(), inputs: map[string]string{}, p: newTestPKI(b)}
	e.cli = filepath.Join(e.dir, "pdfsign")
	if out, err := exec.Command(goBin, "build", "-o", e.cli, "github.com/digitorus/pdfsign").CombinedOutput(); err != nil {
		b.Fatalf("building the pdfsign CLI: %v\n%s", err, out)
	}
	e.chamber = filepath.Join(e.dir, "padesbench")
	if out, err := exec.Command(goBin, "build", "-o", e.chamber, "github.com/chamber-court/chamber/tools/padesbench").CombinedOutput(); err != nil {
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

// side is one side of a comparison: the commands one run consists of.
type side func() []*exec.Cmd

// BenchmarkSign compares Chamber with pdfsign's CLI, size by size, for a
// B-T signature, for the B-LTA structure and for verification. Each pair
// runs inside one loop, alternating which side goes first, so that drift
// on a shared machine falls on both sides alike; ns/op is the pair's sum,
// and the metrics give each side's mean time, their ratio and each side's
// peak RSS.
func BenchmarkSign(b *testing.B) {
	e := newBenchEnv(b)
	for _, label := range e.labels {
		in := e.inputs[label]
		out := filepath.Join(e.dir, label+"-out.pdf")
		fi, err := os.Stat(in)
		if err != nil {
			b.Fatal(err)
		}
		cliSign := func(in, out string) *exec.Cmd {
			return exec.Command(e.cli, "sign", "-certType", "ApprovalSignature", "-tsa", e.tsaURL, "-name", "bench", in, out, e.cert, e.key)
		}
		compare(b, label+"/B-T", fi.Size(),
			func() []*exec.Cmd { return []*exec.Cmd{cliSign(in, out+".cli.pdf")} },
			func() []*exec.Cmd { return []*exec.Cmd{e.helper("sign", in, out)} })
		compare(b, label+"/B-LTA", fi.Size(),
			func() []*exec.Cmd {
				mid := out + ".mid.pdf"
				return []*exec.Cmd{
					cliSign(in, mid),
					exec.Command(e.cli, "sign", "-certType", "TimeStampSignature", "-tsa", e.tsaURL, mid, out+".cli.pdf"),
				}
			},
			func() []*exec.Cmd { return []*exec.Cmd{e.helper("sign-lta", in, out)} })
		// Both verify Chamber's B-LTA output: one signature and one
		// document timestamp.
		compare(b, label+"/verify", fi.Size(),
			func() []*exec.Cmd { return []*exec.Cmd{exec.Command(e.cli, "verify", out)} },
			func() []*exec.Cmd { return []*exec.Cmd{e.helper("verify", out, "")} })
	}
}

// compare runs pdfsign's side and Chamber's side of one comparison.
func compare(b *testing.B, name string, size int64, pdfsign, chamber side) {
	b.Run(name, func(b *testing.B) {
		var took [2]time.Duration
		var peak [2]float64
		sides := [2]side{pdfsign, chamber}
		n := 0
		for b.Loop() {
			for k := range 2 {
				i := (n + k) % 2 // alternate which side goes first
				start := time.Now()
				for _, c := range sides[i]() {
					// pdfsign's verify exits non-zero: the bench CA is not a
					// system root. Its output is checked instead.
					isVerify := len(c.Args) > 1 && c.Args[1] == "verify"
					rss, out := run(b, c, !isVerify)
					if isVerify && !bytes.Contains(out, []byte("bench signer")) {
						b.Fatalf("pdfsign verify:\n%s", out)
					}
					peak[i] = max(peak[i], rss)
				}
				took[i] += time.Since(start)
			}
			n++
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(n) / 1e6 }
		b.ReportMetric(ms(took[0]), "pdfsign-ms")
		b.ReportMetric(ms(took[1]), "chamber-ms")
		b.ReportMetric(float64(took[1])/float64(took[0]), "ratio")
		b.ReportMetric(peak[0], "pdfsign-peak-MiB")
		b.ReportMetric(peak[1], "chamber-peak-MiB")
		b.ReportMetric(peak[1]/(float64(size)/(1<<20)), "chamber-RSS/size")
	})
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
