package recording

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/recording/webm"
)

func TestGridLayout(t *testing.T) {
	full := rect{0, 0, compositeW, compositeH}
	side := rect{documentW, 0, compositeW - documentW, compositeH}
	for _, tc := range []struct {
		name string
		n    int
		area rect
		want []rect
	}{
		{"one fills the canvas", 1, full, []rect{{0, 0, 1280, 720}}},
		{"two side by side", 2, full, []rect{{0, 0, 640, 720}, {640, 0, 640, 720}}},
		{"three: a short last row is centred", 3, full, []rect{{0, 0, 640, 360}, {640, 0, 640, 360}, {320, 360, 640, 360}}},
		{"beside the document, stacked", 3, side, []rect{{852, 0, 428, 240}, {852, 240, 428, 240}, {852, 480, 428, 240}}},
		{"none", 0, full, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := gridLayout(tc.n, tc.area)
			if !slices.Equal(got, tc.want) {
				t.Errorf("gridLayout(%d, %v) = %v, want %v", tc.n, tc.area, got, tc.want)
			}
			for _, r := range got {
				if r.X < tc.area.X || r.Y < tc.area.Y || r.X+r.W > tc.area.X+tc.area.W || r.Y+r.H > tc.area.Y+tc.area.H {
					t.Errorf("%v leaves %v", r, tc.area)
				}
			}
		})
	}
}

func TestFit(t *testing.T) {
	box := rect{100, 0, 428, 240}
	for _, tc := range []struct {
		w, h int
		want rect
	}{
		{640, 480, rect{154, 0, 320, 240}}, // 4:3 in a wider box: full height
		{1280, 720, rect{101, 0, 426, 240}},
		{720, 1280, rect{247, 0, 134, 240}}, // a phone held upright
		{0, 0, rect{100, 0, 428, 240}},      // unknown: the box
		{1920, 200, rect{100, 98, 428, 44}}, // very wide: full width, even height
	} {
		if got := fit(tc.w, tc.h, box); got != tc.want {
			t.Errorf("fit(%dx%d) = %v, want %v", tc.w, tc.h, got, tc.want)
		}
		if got := fit(tc.w, tc.h, box); got.W%2 != 0 || got.H%2 != 0 {
			t.Errorf("fit(%dx%d) = %v: odd size", tc.w, tc.h, got)
		}
	}
}

func TestShownIntervals(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	stop := start.Add(time.Minute)
	at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
	a, b := uuid.New(), uuid.New()
	show := func(s int, doc *uuid.UUID, page int) presentation {
		return presentation{At: at(s), Document: doc, Page: page}
	}
	for _, tc := range []struct {
		name string
		ps   []presentation
		want []pageShown
	}{
		{"nothing", nil, nil},
		{"shown before the start, until the stop", []presentation{show(-30, &a, 3)},
			[]pageShown{{DocumentID: a, Page: 3, FromMs: 0, ToMs: 60000}}},
		{"paged, replaced, taken down", []presentation{show(5, &a, 1), show(10, &a, 2), show(20, &b, 1), show(30, nil, 0)},
			[]pageShown{{DocumentID: a, Page: 1, FromMs: 5000, ToMs: 10000}, {DocumentID: a, Page: 2, FromMs: 10000, ToMs: 20000},
				{DocumentID: b, Page: 1, FromMs: 20000, ToMs: 30000}}},
		{"taken down before the start", []presentation{show(-10, &a, 1), show(-5, nil, 0), show(50, &b, 2)},
			[]pageShown{{DocumentID: b, Page: 2, FromMs: 50000, ToMs: 60000}}},
		{"the session closed", []presentation{show(5, &a, 1), {At: at(40)}},
			[]pageShown{{DocumentID: a, Page: 1, FromMs: 5000, ToMs: 40000}}},
		{"after the stop", []presentation{show(70, &a, 1)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := shownIntervals(tc.ps, start, stop); !slices.Equal(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestPlanComposite: every file is placed at its offset on its own
// timeline, a person's files share their cell, screens and pages go left,
// every sound is mixed, and the command is bounded to one thread.
func TestPlanComposite(t *testing.T) {
	alice, bob := uuid.New(), uuid.New()
	av := []webm.Track{{Number: 1, Kind: "audio"}, {Number: 2, Kind: "video", Width: 640, Height: 480}}
	inputs := []compositeInput{
		{File: webm.File{ParticipantID: alice, StreamID: "a", StartOffsetMs: 0, Tracks: av}, Path: "/w/in-000.webm"},
		{File: webm.File{ParticipantID: bob, StreamID: "b", StartOffsetMs: 1500, Tracks: av}, Path: "/w/in-001.webm"},
		{File: webm.File{ParticipantID: alice, StreamID: "a2", StartOffsetMs: 61000, Tracks: av}, Path: "/w/in-002.webm"}, // reloaded
		{File: webm.File{ParticipantID: bob, StreamID: "b-screen", StartOffsetMs: 2000, Tracks: []webm.Track{{Kind: "video", Width: 1920, Height: 1080}}}, Path: "/w/in-003.webm"},
	}
	plan, err := planComposite(inputs, "/w/slides.ffconcat", 2*time.Minute, "/w/out.webm")
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Cells) != 2 || plan.Cells[alice].X < documentW || plan.Cells[bob].X < documentW {
		t.Errorf("cells %v: want two, beside the document", plan.Cells)
	}
	for _, want := range []string{
		"color=c=0x202020:s=1280x720:r=15:d=120.000[c0]",
		"[4:v]fps=15,format=yuv420p[slides]",
		"[0:v]scale=428:320,setsar=1,setpts=PTS+0.000/TB[v0]",
		"[1:v]scale=428:320,setsar=1,setpts=PTS+1.500/TB[v1]",
		"[2:v]scale=428:320,setsar=1,setpts=PTS+61.000/TB[v2]",
		"[3:v]scale=852:478,setsar=1,setpts=PTS+2.000/TB[v3]",
		"[1:a]asetpts=PTS+1.500/TB,aresample=48000:async=1:first_pts=0[a1]",
		"[a0][a1][a2]amix=inputs=3:normalize=0:duration=longest[a]",
	} {
		if !strings.Contains(plan.FilterGraph, want) {
			t.Errorf("filter graph lacks %q:\n%s", want, plan.FilterGraph)
		}
	}
	// Alice's two files share a cell.
	if strings.Count(plan.FilterGraph, overlayAt(plan.Cells[alice], 640, 480)) != 2 {
		t.Errorf("alice's files are not both in her cell %v:\n%s", plan.Cells[alice], plan.FilterGraph)
	}
	args := strings.Join(plan.Args, " ")
	for _, want := range []string{"-threads 1 -reinit_filter 0 -i /w/in-000.webm", "-f concat -safe 0 -i /w/slides.ffconcat",
		"-filter_complex_threads 1", "-t 120.000", "-c:v libvpx", "-c:a libopus", "-f webm /w/out.webm"} {
		if !strings.Contains(args, want) {
			t.Errorf("command lacks %q: %s", want, args)
		}
	}
	if _, err := planComposite(make([]compositeInput, maxInputFiles+1), "", time.Minute, "x"); err == nil {
		t.Error("a composite of too many files was planned")
	}
	if _, err := planComposite(inputs, "", 0, "x"); err == nil {
		t.Error("a composite of no time was planned")
	}
}

// overlayAt is the overlay of a w×h picture fitted in cell.
func overlayAt(cell rect, w, h int) string {
	at := fit(w, h, cell)
	return "overlay=x=" + itoa(at.X) + ":y=" + itoa(at.Y) + ":"
}

func itoa(n int) string { return strconv.Itoa(n) }
