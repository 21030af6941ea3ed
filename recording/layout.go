package recording

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/recording/webm"
)

// The composite's picture and sound, as an ffmpeg filter graph: a canvas
// the length of the recording; the presented pages (and screen shares) on
// its left when anything was presented; a grid of the participants'
// cameras, one cell per person whatever number of files their camera took
// (a reload starts a new file); every file placed at its start offset and
// kept on its own timeline (setpts PTS+offset), so the recorder's
// audio/video sync survives; audio of every file mixed, gaps (DTX, a
// reload) filled with silence. This file only builds the plan; compose.go
// runs it.

// Canvas of the composite.
const (
	compositeW    = 1280
	compositeH    = 720
	compositeFPS  = 15
	documentW     = 852 // the presented page's region when anything was presented
	background    = "0x202020"
	maxInputFiles = 64 // ffmpeg opens every input at once
)

type rect struct{ X, Y, W, H int }

// gridLayout places n cells of 16:9 pictures in area as large as they can
// be: the number of columns that gives each picture the most room.
func gridLayout(n int, area rect) []rect {
	if n <= 0 {
		return nil
	}
	best, bestCols := 0.0, 1
	for cols := 1; cols <= n; cols++ {
		rows := (n + cols - 1) / cols
		w, h := float64(area.W)/float64(cols), float64(area.H)/float64(rows)
		pw := min(w, h*16/9)                  // the picture fitted in its cell
		if a := pw * pw * 9 / 16; a >= best { // on a tie, more columns: the canvas is wide
			best, bestCols = a, cols
		}
	}
	cols := bestCols
	rows := (n + cols - 1) / cols
	cw, ch := area.W/cols, area.H/rows
	out := make([]rect, n)
	for i := range out {
		r, c := i/cols, i%cols
		inRow := min(cols, n-r*cols) // a short last row is centred
		x0 := area.X + (area.W-inRow*cw)/2
		out[i] = rect{X: x0 + c*cw, Y: area.Y + (area.H-rows*ch)/2 + r*ch, W: cw, H: ch}
	}
	return out
}

// fit returns the even size of a w×h picture fitted into box, and its
// position centred there. An unknown size fills the box.
func fit(w, h int, box rect) rect {
	fw, fh := box.W, box.H
	if w > 0 && h > 0 {
		if box.W*h > box.H*w { // box is wider than the picture
			fw = box.H * w / h
		} else {
			fh = box.W * h / w
		}
	}
	fw, fh = max(2, fw&^1), max(2, fh&^1)
	return rect{X: box.X + (box.W-fw)/2, Y: box.Y + (box.H-fh)/2, W: fw, H: fh}
}

// compositeInput is one input of the composite: a recording file.
type compositeInput struct {
	File webm.File
	Path string // local copy
}

// slide is a stretch of time during which a presented page (or nothing)
// was shown; Image is its picture, already documentW×compositeH.
type slide struct {
	From, To time.Duration // from the recording's start
	Image    string
}

// compositePlan is an ffmpeg command line and what it is made of.
type compositePlan struct {
	Args        []string
	FilterGraph string
	Duration    time.Duration
	// Cells maps each participant with a camera to their cell.
	Cells map[uuid.UUID]rect
}

// secs formats a duration for ffmpeg, in seconds with millisecond precision.
func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

func hasKind(f webm.File, kind string) (webm.Track, bool) {
	for _, t := range f.Tracks {
		if t.Kind == kind {
			return t, true
		}
	}
	return webm.Track{}, false
}

func isScreen(f webm.File) bool { return strings.HasSuffix(f.StreamID, "-screen") }

// planComposite builds the ffmpeg command that composes inputs and slides
// (a concat list at slidesList, empty when nothing was presented) into
// out, duration long.
func planComposite(inputs []compositeInput, slidesList string, duration time.Duration, out string) (compositePlan, error) {
	if len(inputs) > maxInputFiles {
		return compositePlan{}, fmt.Errorf("recording: %d files, more than the %d a composite takes", len(inputs), maxInputFiles)
	}
	if duration <= 0 {
		return compositePlan{}, fmt.Errorf("recording: nothing to compose (duration %v)", duration)
	}
	var screens bool
	var people []uuid.UUID
	for _, in := range inputs {
		if _, ok := hasKind(in.File, "video"); !ok {
			continue
		}
		if isScreen(in.File) {
			screens = true
		} else if !slices.Contains(people, in.File.ParticipantID) {
			people = append(people, in.File.ParticipantID)
		}
	}
	docs := slidesList != "" || screens
	speakers, docArea := rect{0, 0, compositeW, compositeH}, rect{}
	if docs {
		docArea = rect{0, 0, documentW, compositeH}
		speakers = rect{documentW, 0, compositeW - documentW, compositeH}
	}
	plan := compositePlan{Duration: duration, Cells: map[uuid.UUID]rect{}}
	for i, cell := range gridLayout(len(people), speakers) {
		plan.Cells[people[i]] = cell
	}

	args := []string{"-hide_banner", "-nostdin", "-v", "error", "-y"}
	for _, in := range inputs {
		// A picture that changes size mid-file (the browser adapting to
		// the network) is rescaled by scale itself: rebuilding the graph
		// would restart the canvas.
		args = append(args, "-threads", "1", "-reinit_filter", "0", "-i", in.Path)
	}
	var g []string
	g = append(g, fmt.Sprintf("color=c=%s:s=%dx%d:r=%d:d=%s[c0]", background, compositeW, compositeH, compositeFPS, secs(duration)))
	canvas := 0
	overlay := func(src string, at rect) {
		g = append(g, fmt.Sprintf("[c%d][%s]overlay=x=%d:y=%d:eof_action=pass:repeatlast=0[c%d]", canvas, src, at.X, at.Y, canvas+1))
		canvas++
	}
	if slidesList != "" {
		n := len(inputs)
		args = append(args, "-threads", "1", "-f", "concat", "-safe", "0", "-i", slidesList)
		g = append(g, fmt.Sprintf("[%d:v]fps=%d,format=yuv420p[slides]", n, compositeFPS))
		overlay("slides", docArea)
	}
	var audio []string
	for i, in := range inputs {
		off := time.Duration(in.File.StartOffsetMs) * time.Millisecond
		if v, ok := hasKind(in.File, "video"); ok {
			box, ok := plan.Cells[in.File.ParticipantID]
			if isScreen(in.File) {
				box, ok = docArea, true
			}
			if ok {
				at := fit(v.Width, v.Height, box)
				g = append(g, fmt.Sprintf("[%d:v]scale=%d:%d,setsar=1,setpts=PTS+%s/TB[v%d]", i, at.W, at.H, secs(off), i))
				overlay(fmt.Sprintf("v%d", i), at)
			}
		}
		if _, ok := hasKind(in.File, "audio"); ok {
			g = append(g, fmt.Sprintf("[%d:a]asetpts=PTS+%s/TB,aresample=48000:async=1:first_pts=0[a%d]", i, secs(off), i))
			audio = append(audio, fmt.Sprintf("[a%d]", i))
		}
	}
	g = append(g, fmt.Sprintf("[c%d]format=yuv420p[v]", canvas))
	maps := []string{"-map", "[v]"}
	switch len(audio) {
	case 0:
	case 1:
		g = append(g, audio[0]+"anull[a]")
		maps = append(maps, "-map", "[a]")
	default:
		g = append(g, fmt.Sprintf("%samix=inputs=%d:normalize=0:duration=longest[a]", strings.Join(audio, ""), len(audio)))
		maps = append(maps, "-map", "[a]")
	}
	plan.FilterGraph = strings.Join(g, ";\n")
	args = append(args, "-filter_complex_threads", "1", "-filter_complex", plan.FilterGraph)
	args = append(args, maps...)
	args = append(args, "-t", secs(duration), "-threads", "1",
		"-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "1M", "-auto-alt-ref", "0")
	if len(audio) > 0 {
		args = append(args, "-c:a", "libopus", "-b:a", "64k")
	}
	args = append(args, "-f", "webm", out)
	plan.Args = args
	return plan, nil
}
