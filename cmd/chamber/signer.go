package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/documents"
	"github.com/chamber-court/chamber/journal"
	"github.com/chamber-court/chamber/pki"
	"github.com/chamber-court/chamber/signers"
)

// envSignerPIN carries a token PIN to `chamber signer enroll`: never a
// flag, so that it stays out of the process list and shell history.
const envSignerPIN = "CHAMBER_SIGNER_PIN"

// signerFlags are serve's and the signer command's shared settings.
type signerFlags struct {
	kekFile string
	modules stringList
}

func (f *signerFlags) register(c *command) {
	f.registerKEK(c)
	c.fs.Var(&f.modules, "pkcs11-module", "path of a PKCS#11 module signing identities may use (HSM, smart card, cloud HSM); repeatable")
}

func (f *signerFlags) registerKEK(c *command) {
	c.fs.StringVar(&f.kekFile, "signer-kek-file", "", "key-encryption key (32 random bytes, base64, mode 0600) sealing issued signing keys and stored token PINs; empty = <data-dir>/signer.kek, created on first use (development)")
}

// kek loads the key-encryption key, creating the development one in the
// data directory when none is configured.
func (f signerFlags) kek(dataDir string, log *slog.Logger) (*signers.KEK, error) {
	if f.kekFile != "" {
		kek, err := signers.LoadKEK(f.kekFile)
		if err != nil {
			return nil, usagef("--signer-kek-file: %v", err)
		}
		return kek, nil
	}
	path := filepath.Join(dataDir, "signer.kek")
	kek, created, err := signers.LoadOrCreateKEK(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("created a development key-encryption key for signing identities beside the data; give --signer-kek-file from a secret store in production", "path", path)
	}
	return kek, nil
}

// signingIdentities is serve's register of officials' signing identities,
// adapted to what documents need. With the development PKI's seal (no
// --signing-cert or --signing-p12) an official who never had an identity
// gets a development one at their first signature, so that a zero-config
// server signs end to end; otherwise identities are enrolled by the
// operator with `chamber signer enroll`.
func (cfg serveConfig) signingIdentities(db *database.DB, jnl *journal.Journal, ca *pki.Authority, log *slog.Logger) (documents.Signers, error) {
	kek, err := cfg.signers.kek(cfg.dataDir, log)
	if err != nil {
		return nil, err
	}
	dev := cfg.signingCert == "" && cfg.signingP12 == ""
	svc := signers.New(signers.Config{DB: db, Journal: jnl, Logger: log, KEK: kek, CA: ca, Modules: cfg.signers.modules, AutoIssue: dev})
	if dev {
		log.Warn("officials without a signing identity get a development one at their first signature (development PKI); enrol them with chamber signer enroll in production")
	}
	return documents.SignersFunc(func(ctx context.Context, staffID uuid.UUID, pin string) (pki.Signer, documents.Identity, error) {
		s, id, err := svc.For(ctx, staffID, pin)
		return s, documents.Identity{ID: id.ID, PINTyped: id.PINTyped()}, err
	}), nil
}

// runSigner manages officials' signing identities.
func runSigner(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	sc, err := parseSigner(args, stderr)
	if err != nil {
		return err
	}
	log, err := sc.cfg.logger(stderr)
	if err != nil {
		return err
	}
	db, err := sc.cfg.openDatabase(ctx, quiet(log))
	if err != nil {
		return err
	}
	defer db.Close()
	svc, err := sc.service(db, log)
	if err != nil {
		return err
	}
	return sc.run(ctx, svc, stdout, stderr)
}

// signerCommand is one chamber signer subcommand and its flags.
type signerCommand struct {
	sub       string
	cfg       storageConfig
	sf        signerFlags
	publicURL string
	staff     string
	staffID   uuid.UUID
	e         signers.Enrolment
	tok       signers.Token
	slot      int
	certFile  string
	reason    int
}

func parseSigner(args []string, stderr io.Writer) (*signerCommand, error) {
	if len(args) == 0 {
		return nil, usagef("chamber signer: want enroll, list or revoke")
	}
	sc := &signerCommand{sub: args[0]}
	c := newCommand("signer " + sc.sub)
	sc.cfg.register(c)
	if err := sc.register(c); err != nil {
		return nil, err
	}
	if err := c.parse(args[1:], stderr); err != nil {
		return nil, err
	}
	if sc.staff != "" || sc.sub != "list" {
		var err error
		if sc.staffID, err = uuid.Parse(sc.staff); err != nil {
			return nil, usagef("chamber signer %s: --staff %q is not a staff id", sc.sub, sc.staff)
		}
	}
	if sc.sub == "enroll" {
		if err := enrolment(&sc.e, &sc.tok, sc.slot, sc.certFile); err != nil {
			return nil, err
		}
		sc.e.StaffID = sc.staffID
		if sc.tok.Module != "" {
			sc.sf.modules = append(sc.sf.modules, sc.tok.Module) // the operator names it here
		}
	}
	return sc, nil
}

// register adds the subcommand's own flags.
func (sc *signerCommand) register(c *command) error {
	switch sc.sub {
	case "enroll":
		sc.sf.registerKEK(c)
		c.fs.StringVar(&sc.publicURL, "public-url", "http://localhost:8080", "the server's public URL (the CRL location in issued certificates)")
		c.fs.StringVar(&sc.staff, "staff", "", "the staff member's id (see chamber staff list)")
		c.fs.BoolVar(&sc.e.Issue, "issue", false, "the CA issues a key and certificate, kept sealed under the key-encryption key")
		c.fs.StringVar(&sc.tok.Module, "pkcs11-module", "", "or: the PKCS#11 module of the person's token (give the server the same path with --pkcs11-module)")
		c.fs.StringVar(&sc.tok.TokenLabel, "token-label", "", "the token's label")
		c.fs.IntVar(&sc.slot, "slot", -1, "or the token's slot number")
		c.fs.StringVar(&sc.tok.KeyLabel, "key-label", "", "the key's label (CKA_LABEL)")
		c.fs.StringVar(&sc.tok.KeyID, "key-id", "", "or the key's ID (CKA_ID, hex)")
		c.fs.StringVar(&sc.certFile, "cert", "", "the key's certificate (PEM, with its chain) when the token has none")
		c.fs.BoolVar(&sc.e.Certify, "certify", false, "have Chamber's CA certify the token's key")
		c.fs.BoolVar(&sc.e.StorePIN, "store-pin", false, "keep the PIN sealed server-side (unattended HSMs); otherwise the signer types it at each signature")
	case "list":
		c.fs.StringVar(&sc.staff, "staff", "", "only this staff member's identities")
	case "revoke":
		c.fs.StringVar(&sc.publicURL, "public-url", "http://localhost:8080", "the server's public URL")
		c.fs.StringVar(&sc.staff, "staff", "", "the staff member whose current identity ends")
		c.fs.IntVar(&sc.reason, "reason", 0, "RFC 5280 reason code: 0 unspecified, 1 key compromise, 4 superseded, 5 cessation of operation")
	default:
		return usagef("chamber signer: unknown subcommand %q (want enroll, list or revoke)", sc.sub)
	}
	return nil
}

// service opens the signing identities with what the subcommand needs:
// the CA to issue or revoke, the KEK to seal an issued key.
func (sc *signerCommand) service(db *database.DB, log *slog.Logger) (*signers.Service, error) {
	scfg := signers.Config{DB: db, Journal: journal.New(journal.Config{DB: db, Logger: log}), Logger: quiet(log), Modules: sc.sf.modules}
	if sc.sub != "list" {
		ca, err := pki.LoadOrCreateDev(pkiDir(sc.cfg.dataDir), sc.publicURL, quiet(log))
		if err != nil {
			return nil, fmt.Errorf("development PKI: %w", err)
		}
		scfg.CA = ca
	}
	if sc.sub == "enroll" {
		var err error
		if scfg.KEK, err = sc.sf.kek(sc.cfg.dataDir, log); err != nil {
			return nil, err
		}
	}
	return signers.New(scfg), nil
}

func (sc *signerCommand) run(ctx context.Context, svc *signers.Service, stdout, stderr io.Writer) error {
	switch sc.sub {
	case "enroll":
		id, err := svc.Enroll(ctx, "system", sc.e)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "enrolled %s identity %s for staff %s: %s, serial %s, certificate SHA-256 %s; any earlier identity is superseded\n",
			id.Kind, id.ID, id.StaffID, id.Subject, id.Serial, id.CertSHA256)
		fmt.Fprintln(stdout, id.ID)
	case "list":
		list, err := svc.List(ctx, sc.staffID)
		if err != nil {
			return err
		}
		return printIdentities(stdout, list)
	case "revoke":
		id, err := svc.Revoke(ctx, "system", sc.staffID, sc.reason)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "revoked identity %s (serial %s) of staff %s; they cannot sign until enrolled again\n", id.ID, id.Serial, id.StaffID)
	}
	return nil
}

// enrolment completes e from the enroll command's flags.
func enrolment(e *signers.Enrolment, tok *signers.Token, slot int, certFile string) error {
	if e.Issue == (tok.Module != "") {
		return usagef("chamber signer enroll: give --issue or --pkcs11-module with the token and key")
	}
	if e.Issue {
		return nil
	}
	if slot >= 0 {
		tok.Slot = &slot
	}
	e.Token = tok
	e.PIN = os.Getenv(envSignerPIN)
	if e.PIN == "" {
		return usagef("chamber signer enroll: the token's PIN goes in %s", envSignerPIN)
	}
	if certFile != "" {
		data, err := os.ReadFile(certFile)
		if err != nil {
			return usagef("chamber signer enroll: --cert: %v", err)
		}
		if e.Certificate, err = pki.ParseCertificatesPEM(data); err != nil {
			return usagef("chamber signer enroll: --cert %s: %v", certFile, err)
		}
	}
	return nil
}

func printIdentities(w io.Writer, list []signers.Identity) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTAFF\tKIND\tSUBJECT\tSERIAL\tNOT AFTER\tPIN\tSTATE")
	for _, id := range list {
		state := "current"
		switch {
		case id.RevokedAt != nil:
			state = "revoked " + id.RevokedAt.Format("2006-01-02 15:04")
		case id.SupersededAt != nil:
			state = "superseded " + id.SupersededAt.Format("2006-01-02 15:04")
		}
		pin := "-"
		if id.Kind == signers.PKCS11 {
			pin = "at signing"
			if id.PINStored {
				pin = "stored"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id.ID, id.StaffID, id.Kind, id.Subject, id.Serial, id.NotAfter.Format("2006-01-02"), pin, state)
	}
	return tw.Flush()
}
