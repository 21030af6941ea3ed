package recording

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/chamber-court/chamber/recording/webm"
)

// The presented pages in the composite. The journal says which page of
// which document was shown to the main room when (document.presented);
// the document service gives the version shown then (the newest version
// created by then); pdftoppm renders the page — the server's own copy,
// never anything fetched — and ffmpeg fits it to the document region. A
// concat list then shows each picture from the time it was shown to the
// time it was replaced or taken down.

const (
	maxPages       = 300              // distinct pages rendered per composite
	maxSlides      = 20_000           // stretches of time in the concat list
	renderTimeout  = 60 * time.Second // per page, and per picture fitted
	renderMaxPixel = 1600             // pdftoppm's longest side
)

// pageShown is one stretch of time a page was shown, as the journal entry
// of the composite lists it.
type pageShown struct {
	DocumentID uuid.UUID `json:"document_id"`
	Version    int       `json:"version,omitempty"`
	SHA256     string    `json:"sha256,omitempty"`
	Page       int       `json:"page"`
	FromMs     int64     `json:"from_ms"`
	ToMs       int64     `json:"to_ms"`
	// Rendered is false when the page could not be drawn (no pdftoppm, a
	// document that cannot be read): the region stays empty then.
	Rendered bool   `json:"rendered"`
	Image    string `json:"image,omitempty"` // its picture's name in the concat list
}

// shownIntervals turns the presentations into stretches of the recording
// (from its start) during which a page was shown.
func shownIntervals(ps []presentation, start, stop time.Time) []pageShown {
	var out []pageShown
	var cur *presentation
	from := start
	flush := func(to time.Time) {
		if cur != nil && cur.Document != nil && to.After(from) {
			out = append(out, pageShown{DocumentID: *cur.Document, Page: cur.Page,
				FromMs: from.Sub(start).Milliseconds(), ToMs: to.Sub(start).Milliseconds()})
		}
	}
	for i := range ps {
		p := &ps[i]
		if p.At.After(stop) {
			break
		}
		if p.At.After(from) {
			flush(p.At)
			from = p.At
		}
		cur = p
	}
	flush(stop)
	if len(out) > maxSlides {
		out = out[:maxSlides]
	}
	return out
}

// renderSlides renders what was shown during the recording and writes the
// concat list that shows it; it returns "" when nothing was shown.
func (c *Controller) renderSlides(ctx context.Context, sessionID uuid.UUID, m webm.Manifest, work string) (string, []pageShown, error) {
	ps, err := c.presentations(ctx, sessionID, m.StoppedAt)
	if err != nil {
		return "", nil, err
	}
	shown := shownIntervals(ps, m.StartedAt, m.StoppedAt)
	if len(shown) == 0 {
		return "", nil, nil
	}
	none := filepath.Join(work, "none.png")
	if err := c.composites.runProgram(ctx, c.composites.ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
		"-i", fmt.Sprintf("color=c=%s:s=%dx%d", background, documentW, compositeH), "-frames:v", "1", "-pix_fmt", "rgb24", none); err != nil {
		return "", nil, fmt.Errorf("ffmpeg: %w", err)
	}
	r := slideRenderer{c: c, sessionID: sessionID, work: work, images: map[string]string{}, docs: map[string]string{}}
	for i := range shown {
		s := &shown[i]
		at := m.StartedAt.Add(time.Duration(s.FromMs) * time.Millisecond)
		s.Image, s.Version, s.SHA256 = r.page(ctx, s.DocumentID, s.Page, at)
		s.Rendered = s.Image != ""
	}
	list := filepath.Join(work, "slides.ffconcat")
	if err := writeConcat(list, shown, none, m.StoppedAt.Sub(m.StartedAt)); err != nil {
		return "", nil, err
	}
	for i := range shown {
		shown[i].Image = filepath.Base(shown[i].Image)
	}
	return list, shown, nil
}

// writeConcat writes an ffconcat list that shows each stretch's picture
// for its time, and none in between, over length.
func writeConcat(path string, shown []pageShown, none string, length time.Duration) error {
	var b strings.Builder
	b.WriteString("ffconcat version 1.0\n")
	entry := func(img string, from, to int64) {
		if to > from {
			fmt.Fprintf(&b, "file '%s'\nduration %s\n", img, secs(time.Duration(to-from)*time.Millisecond))
		}
	}
	at := int64(0)
	for _, s := range shown {
		entry(none, at, s.FromMs)
		img := s.Image
		if img == "" {
			img = none
		}
		entry(img, s.FromMs, s.ToMs)
		at = s.ToMs
	}
	entry(none, at, length.Milliseconds())
	// The last file is listed again: the concat demuxer gives the last
	// entry no duration otherwise.
	fmt.Fprintf(&b, "file '%s'\n", none)
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// slideRenderer renders each distinct page once.
type slideRenderer struct {
	c         *Controller
	sessionID uuid.UUID
	work      string
	images    map[string]string // document/version/page → fitted picture ("" : cannot)
	docs      map[string]string // document/version → local copy
	warned    bool
}

// page returns the fitted picture of a page as shown at at, with the
// version shown and its SHA-256; "" when it cannot be drawn.
func (r *slideRenderer) page(ctx context.Context, doc uuid.UUID, page int, at time.Time) (string, int, string) {
	docs := r.c.composites.cfg.Documents
	if docs == nil {
		return "", 0, ""
	}
	rc, v, err := docs.Presented(ctx, r.sessionID, doc, at)
	if err != nil {
		r.c.log.Warn("composite: a presented document cannot be shown", "document", doc, "err", err)
		return "", 0, ""
	}
	id := fmt.Sprintf("%s-v%d", doc, v.Version)
	src, err := r.copy(id, rc)
	rc.Close()
	key := fmt.Sprintf("%s-p%d", id, page)
	img, done := r.images[key]
	switch {
	case done:
	case err != nil:
		r.c.log.Warn("composite: a presented document cannot be read", "document", doc, "version", v.Version, "err", err)
	case len(r.images) >= maxPages:
	default:
		if img, err = r.render(ctx, src, id, page, v); err != nil {
			r.c.log.Warn("composite: a presented page cannot be drawn", "document", doc, "version", v.Version, "page", page, "err", err)
		}
		r.images[key] = img
	}
	return img, v.Version, v.SHA256
}

// copy keeps a local copy of a document version, read from rc the first
// time.
func (r *slideRenderer) copy(id string, rc io.Reader) (string, error) {
	if p, ok := r.docs[id]; ok {
		return p, nil
	}
	path := filepath.Join(r.work, "doc-"+id)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	r.docs[id] = path
	return path, nil
}

// render draws one page of the document at src and fits it to the
// document region.
func (r *slideRenderer) render(ctx context.Context, src, id string, page int, v PresentedVersion) (string, error) {
	comp := r.c.composites
	switch v.ContentType {
	case "application/pdf":
		if comp.pdftoppm == "" {
			if !r.warned {
				r.warned = true
				r.c.log.Warn("composite: pdftoppm not found; presented pages are left out (install poppler-utils)")
			}
			return "", errNoPages
		}
		out := filepath.Join(r.work, fmt.Sprintf("%s-p%d", id, page))
		rctx, cancel := context.WithTimeout(ctx, renderTimeout)
		err := comp.runProgram(rctx, comp.pdftoppm, "-f", fmt.Sprint(page), "-l", fmt.Sprint(page), "-singlefile", "-png",
			"-scale-to", fmt.Sprint(renderMaxPixel), src, out)
		cancel()
		if err != nil {
			return "", err
		}
		src = out + ".png"
	case "image/png", "image/jpeg":
		if page != 1 {
			return "", errNoPages
		}
	default:
		return "", fmt.Errorf("%w: %s", errNoPages, v.ContentType)
	}
	fitted := filepath.Join(r.work, fmt.Sprintf("slide-%03d.png", len(r.images)))
	rctx, cancel := context.WithTimeout(ctx, renderTimeout)
	defer cancel()
	err := comp.runProgram(rctx, comp.ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", src, "-vf",
		fmt.Sprintf("scale=%d:%d:force_original_aspect_ratio=decrease,pad=%d:%d:(ow-iw)/2:(oh-ih)/2:color=%s,format=rgb24",
			documentW, compositeH, documentW, compositeH, background), "-frames:v", "1", fitted)
	if err != nil {
		return "", err
	}
	return fitted, nil
}
