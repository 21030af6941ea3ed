package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/acts/mrz"
	"github.com/chamber-court/chamber/bundle/bundletest"
	"github.com/chamber-court/chamber/internal/testenv"
)

// TestEmbassyCeremony is the whole notarial act through an embassy with
// real signalling clients publishing media: the notary creates the act and
// uploads the draft, officer and principal join and are admitted, the
// recording runs, the officer verifies a passport and captures stills, the
// principal signs, the notary signs and seals, the bundle downloads and
// chamber bundle verify passes offline — and fails, naming the file, when
// any byte of the bundle changes. ffprobe reads every recording.
func TestEmbassyCeremony(t *testing.T) {
	ffprobe := testenv.Command(t, "ffprobe")
	dir := t.TempDir()
	notaryMember := addStaff(t, dir, nil, "Notary Kadri Mets", "notary")
	officerMember := addStaff(t, dir, nil, "Consul Jaan Saar", "embassy_officer")
	notaryStaff := notaryMember.Token
	s := startServer(t, dir, nil, "--nat-ip", "127.0.0.1")

	var sess struct{ ID string }
	call(t, "POST", s.URL+"/api/v1/sessions", notaryStaff, map[string]any{"kind": "notarisation", "title": "Power of attorney of Mari Tamm", "act_type": "power_of_attorney"}, 201, &sess)
	base := s.URL + "/api/v1/sessions/" + sess.ID
	type inv struct {
		ParticipantID string `json:"participant_id"`
		Token         string
	}
	invite := func(name, role string) inv {
		var i inv
		call(t, "POST", base+"/invitations", notaryStaff, map[string]any{"name": name, "role": role}, 201, &i)
		return i
	}
	// The notary presides as themselves and assigns the embassy officer;
	// only the principal is invited.
	assign(t, s.URL, sess.ID, notaryStaff, officerMember.ID)
	ne, oe := enter(t, s.URL, sess.ID, notaryStaff), enter(t, s.URL, sess.ID, officerMember.Token)
	in := inv{ParticipantID: ne.Participant.ID, Token: notaryStaff}
	io_ := inv{ParticipantID: oe.Participant.ID, Token: officerMember.Token}
	ip := invite("Mari Tamm", "principal")
	pdf, err := os.ReadFile("../../documents/pades/testdata/libreoffice-will.pdf")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ ID string }
	call(t, "POST", base+"/documents?name=power-of-attorney.pdf", in.Token, pdf, 201, &doc)

	notary := joinPeer(t, s.URL, sess.ID, "notary", ne.Ticket, in.ParticipantID, true)
	officer := joinPeer(t, s.URL, sess.ID, "officer", oe.Ticket, io_.ParticipantID, false)
	principal := joinPeer(t, s.URL, sess.ID, "principal", ip.Token, ip.ParticipantID, false)
	call(t, "POST", base+"/participants/"+io_.ParticipantID+"/admit", in.Token, nil, 200, nil)
	call(t, "POST", base+"/participants/"+ip.ParticipantID+"/admit", in.Token, nil, 200, nil)
	officer.publish()
	principal.publish() // once admitted: the waiting room publishes nothing
	if !notary.flowing(principal, "camera", 15*time.Second) || !principal.flowing(notary, "microphone", 15*time.Second) {
		t.Fatal("notary and principal do not see and hear each other")
	}

	call(t, "POST", base+"/recording", in.Token, map[string]any{"action": "start"}, 200, nil)
	recordStart := time.Now()
	// Everyone is told the recording started.
	for _, p := range []*peer{officer, principal} {
		waitEvent(t, p, "recording")
	}

	// The out-of-order steps are refused.
	sign := map[string]any{"reason": "I grant this power of attorney", "location": "London"}
	call(t, "POST", s.URL+"/api/v1/documents/"+doc.ID+"/signatures", ip.Token, sign, 409, nil)
	// The notary designates the act's document before anyone signs.
	call(t, "PUT", base+"/act/document", in.Token, map[string]any{"document_id": doc.ID}, 200, nil)
	call(t, "POST", base+"/seal", in.Token, nil, 409, nil)

	// The officer checks the passport.
	text, err := mrz.FormatTD3(mrz.Document{Type: "P", IssuingState: "EST", Surname: "TAMM", GivenNames: "MARI", Number: "KX1234567",
		Nationality: "EST", BirthDate: "1980-02-29", Sex: "F", ExpiryDate: time.Now().AddDate(3, 0, 0).Format(time.DateOnly)})
	if err != nil {
		t.Fatal(err)
	}
	var check struct{ ID string }
	call(t, "POST", base+"/identity-checks", io_.Token, map[string]any{"participant_id": ip.ParticipantID, "mrz": text, "embassy": "Embassy of Estonia in London"}, 201, &check)
	still := stillPNG(t)
	for _, kind := range []string{"face", "document"} {
		callRaw(t, "POST", base+"/identity-checks/"+check.ID+"/stills?kind="+kind, io_.Token, "image/png", still, 201)
		still = append(still, 0) // a different image for the document
	}
	call(t, "POST", base+"/identity-checks/"+check.ID+"/outcome", io_.Token, map[string]any{"verified": true, "address": "1 Kensington Court, London"}, 200, nil)
	waitEvent(t, notary, "identity_check")

	call(t, "POST", s.URL+"/api/v1/documents/"+doc.ID+"/signatures", ip.Token, sign, 201, nil)
	call(t, "POST", s.URL+"/api/v1/documents/"+doc.ID+"/signatures", in.Token, map[string]any{"reason": "Notarised", "location": "Tallinn"}, 201, nil)

	// The act's recording is six seconds long (the test's input, not a
	// synchronisation: the stop below is acknowledged when it is stored).
	time.Sleep(time.Until(recordStart.Add(6 * time.Second)))
	var stopped struct {
		ManifestKey    string `json:"manifest_key"`
		ManifestSHA256 string `json:"manifest_sha256"`
		Files          []struct {
			Key           string `json:"key"`
			ParticipantID string `json:"participant_id"`
			StartOffsetMs int64  `json:"start_offset_ms"`
			DurationMs    int64  `json:"duration_ms"`
			Tracks        []struct {
				Kind  string `json:"kind"`
				Codec string `json:"codec"`
			} `json:"tracks"`
		} `json:"files"`
	}
	// Recorded until the stop was asked for: what the answer's wait for the
	// files to be stored adds is not part of the recording.
	recorded := time.Since(recordStart)
	call(t, "POST", base+"/recording", in.Token, map[string]any{"action": "stop"}, 200, &stopped)
	if len(stopped.Files) < 3 || stopped.ManifestSHA256 == "" {
		t.Fatalf("recording: %+v", stopped)
	}

	var sealed struct {
		Act struct{ State, Number string }
	}
	call(t, "POST", base+"/seal", in.Token, map[string]any{"fee": "EUR 35.00"}, 200, &sealed)
	if sealed.Act.State != "sealed" || !strings.HasSuffix(sealed.Act.Number, "/000001") {
		t.Fatalf("seal: %+v", sealed)
	}
	call(t, "POST", s.URL+"/api/v1/documents/"+doc.ID+"/signatures", in.Token, sign, 409, nil)

	var zipped []byte
	call(t, "GET", base+"/bundle", in.Token, nil, 200, &zipped)
	var caPEM []byte
	call(t, "GET", s.URL+"/pki/ca.pem", "", nil, 200, &caPEM)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	// ffprobe reads every recording: the right codecs, the right length.
	work := t.TempDir()
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	covered, withVideo := map[string]float64{}, map[string]bool{}
	for _, f := range stopped.Files {
		name := "evidence/" + strings.TrimPrefix(f.Key, "sessions/"+sess.ID+"/")
		zf, err := zr.Open(name)
		if err != nil {
			t.Fatalf("recording %s is not in the bundle: %v", name, err)
		}
		path := filepath.Join(work, filepath.Base(name))
		out, _ := os.Create(path)
		io.Copy(out, zf)
		out.Close()
		zf.Close()
		probe, err := exec.Command(ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", name, err)
		}
		var info struct {
			Streams []struct {
				CodecName string `json:"codec_name"`
				CodecType string `json:"codec_type"`
			} `json:"streams"`
			Format struct {
				Duration string `json:"duration"`
			} `json:"format"`
		}
		json.Unmarshal(probe, &info)
		got := map[string]string{}
		for _, st := range info.Streams {
			got[st.CodecType] = st.CodecName
		}
		want := map[string]string{}
		for _, tr := range f.Tracks {
			want[tr.Kind] = tr.Codec
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || got["audio"] != "opus" {
			t.Errorf("%s: ffprobe finds %v, the manifest says %v", name, got, want)
		}
		dur, _ := strconv.ParseFloat(info.Format.Duration, 64)
		if math.Abs(dur-float64(f.DurationMs)/1000) > 1 {
			t.Errorf("%s: ffprobe duration %.2fs, manifest %.2fs", name, dur, float64(f.DurationMs)/1000)
		}
		if end := float64(f.StartOffsetMs+f.DurationMs) / 1000; end > covered[f.ParticipantID] {
			covered[f.ParticipantID] = end
		}
		if got["video"] == "vp8" {
			withVideo[f.ParticipantID] = true
		}
	}
	// Each participant is recorded, with video, up to the end.
	if len(covered) != 3 {
		t.Fatalf("recordings cover %d participants, want 3", len(covered))
	}
	for pid, end := range covered {
		if math.Abs(end-recorded.Seconds()) > 1 || !withVideo[pid] {
			t.Errorf("participant %s: recorded until %.2fs of %.2fs, video %v", pid, end, recorded.Seconds(), withVideo[pid])
		}
	}

	// The bundle verifies offline and fails, naming the file, when a byte
	// of any file changes.
	offline := t.TempDir()
	bundleFile, caFile := filepath.Join(offline, "act.zip"), filepath.Join(offline, "ca.pem")
	os.WriteFile(caFile, caPEM, 0o644)
	os.WriteFile(bundleFile, zipped, 0o644)
	if out, errOut, code := chamber(t, offline, "bundle", "verify", bundleFile, "--trust", caFile); code != 0 {
		t.Fatalf("bundle verify: %d\n%s%s", code, out, errOut)
	}
	for _, f := range zr.File {
		tampered := bundletest.Flip(t, zipped, f.Name)
		os.WriteFile(bundleFile, tampered, 0o644)
		out, _, code := chamber(t, offline, "bundle", "verify", bundleFile, "--trust", caFile)
		if code != 1 {
			t.Errorf("bundle with %s changed: exit %d", f.Name, code)
			continue
		}
		named := strings.Contains(out, f.Name)
		if f.Name == "manifest.json" || f.Name == "manifest.json.p7s" {
			named = strings.Contains(out, "manifest.json")
		}
		if !named {
			t.Errorf("bundle with %s changed: the report does not name it:\n%s", f.Name, out)
		}
	}
}

func waitEvent(t *testing.T, p *peer, typ string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e := <-p.events:
			if e.Type == typ {
				return
			}
		case <-deadline:
			t.Fatalf("%s never received a %s event", p.name, typ)
		}
	}
}

func stillPNG(t *testing.T) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for x := range 64 {
		img.Set(x, x%48, color.RGBA{30, 60, 200, 255})
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func callRaw(t *testing.T, method, url, token, contentType string, body []byte, want int) {
	t.Helper()
	req, _ := httpNewRequest(method, url, body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", contentType)
	resp, err := httpDo(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s = %d %s, want %d", method, url, resp.StatusCode, b, want)
	}
}
