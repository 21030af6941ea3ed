package webm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/at-wat/ebml-go"
	"github.com/at-wat/ebml-go/webm"
)

// The file layout. A spool file is written in live mode, as a browser's
// MediaRecorder would: a Segment and Clusters of unknown size, so that
// every prefix ending at a block boundary is a playable file. Space is
// reserved in the header (as Void elements) for what only the end knows —
// the SeekHead pointing at the Cues, and the Info's Duration — and finish
// fills it in place. Nothing already written moves.
const (
	seekHeadReserve = 96   // bytes reserved at the start of the Segment for the SeekHead
	maxClusterMs    = 5000 // clusters stay far below the 32.767 s a block's int16 offset allows
	timecodeScale   = 1000000
)

// Element IDs the spool scanner recognises.
const (
	idCluster     = 0x1F43B675
	idCues        = 0x1C53BB6B
	idTimecode    = 0xE7
	idSimpleBlock = 0xA3
)

// layout records where the header's reserved places are, so that finish
// (or Recover, after a crash) can fill them.
type layout struct {
	SegmentDataAt  int64  `json:"segment_data_at"`  // origin of SeekHead and Cue positions
	SeekVoidAt     int64  `json:"seek_void_at"`     // reserved Void for the SeekHead
	InfoAt         int64  `json:"info_at"`          // Info element
	DurationVoidAt int64  `json:"duration_void_at"` // 11-byte Void inside Info, becomes Duration
	TracksAt       int64  `json:"tracks_at"`        // Tracks element
	ClustersAt     int64  `json:"clusters_at"`      // end of the header
	MainTrack      uint64 `json:"main_track"`       // track whose keyframes start clusters and get cues
}

// webmFile writes one spool file.
type webmFile struct {
	f      *os.File
	lay    layout
	size   int64 // bytes written so far
	dirty  bool  // written since the last sync
	buf    bytes.Buffer
	inClus bool
	clusMs int64 // current cluster's timecode
	cues   []webm.CuePoint
	endMs  int64 // end of the latest block (time + duration)
}

type infoElement struct {
	// Void first, so its place is known; finish turns it into Duration.
	Void          []byte    `ebml:"Void"`
	TimecodeScale uint64    `ebml:"TimecodeScale"`
	MuxingApp     string    `ebml:"MuxingApp"`
	WritingApp    string    `ebml:"WritingApp"`
	DateUTC       time.Time `ebml:"DateUTC"`
}

type seekEntry struct {
	SeekID       []byte `ebml:"SeekID"`
	SeekPosition uint64 `ebml:"SeekPosition,size=8"`
}

// createWebM creates path and writes the header for tracks, whose
// TrackNumbers must be 1…n. docType is "webm" or "matroska" (H.264).
func createWebM(path, docType string, tracks []webm.TrackEntry, mainTrack uint64, start time.Time) (*webmFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	w := &webmFile{f: f, lay: layout{MainTrack: mainTrack}}
	if err := w.writeHeader(docType, tracks, start); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return w, nil
}

func (w *webmFile) writeHeader(docType string, tracks []webm.TrackEntry, start time.Time) error {
	h := *webm.DefaultEBMLHeader
	h.DocType = docType
	var b bytes.Buffer
	if err := ebml.Marshal(&struct {
		Header webm.EBMLHeader `ebml:"EBML"`
	}{h}, &b); err != nil {
		return err
	}
	segmentAt := b.Len()
	if err := ebml.Marshal(&struct {
		Segment struct{} `ebml:"Segment,size=unknown"`
	}{}, &b); err != nil {
		return err
	}
	w.lay.SegmentDataAt = int64(b.Len())
	if w.lay.SegmentDataAt != int64(segmentAt)+12 {
		return fmt.Errorf("webm: unexpected Segment header of %d bytes", w.lay.SegmentDataAt-int64(segmentAt))
	}
	w.lay.SeekVoidAt = int64(b.Len())
	b.Write(voidElement(seekHeadReserve))

	w.lay.InfoAt = int64(b.Len())
	if err := ebml.Marshal(&struct {
		Info infoElement `ebml:"Info"`
	}{infoElement{
		Void:          make([]byte, 9),
		TimecodeScale: timecodeScale,
		MuxingApp:     "Chamber",
		WritingApp:    "Chamber recorder",
		DateUTC:       start.UTC(),
	}}, &b); err != nil {
		return err
	}
	i := bytes.Index(b.Bytes()[w.lay.InfoAt:], []byte{0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	if i < 0 {
		return errors.New("webm: Duration placeholder not found in Info")
	}
	w.lay.DurationVoidAt = w.lay.InfoAt + int64(i)

	w.lay.TracksAt = int64(b.Len())
	if err := ebml.Marshal(&struct {
		Tracks webm.Tracks `ebml:"Tracks"`
	}{webm.Tracks{TrackEntry: tracks}}, &b); err != nil {
		return err
	}
	w.lay.ClustersAt = int64(b.Len())
	return w.write(b.Bytes())
}

func (w *webmFile) write(p []byte) error {
	n, err := w.f.Write(p)
	w.size += int64(n)
	w.dirty = true
	return err
}

// writeBlock appends one frame at ms milliseconds from the file's start.
// A new cluster starts at each keyframe of the main track and at least
// every maxClusterMs.
func (w *webmFile) writeBlock(track uint64, keyframe bool, ms, durMs int64, data []byte) error {
	w.buf.Reset()
	main := track == w.lay.MainTrack
	if !w.inClus || ms-w.clusMs >= maxClusterMs || ms < w.clusMs-maxClusterMs || keyframe && main {
		w.inClus, w.clusMs = true, ms
		if keyframe && main {
			w.cues = append(w.cues, webm.CuePoint{
				CueTime: uint64(ms),
				CueTrackPositions: []webm.CueTrackPosition{{
					CueTrack: track, CueClusterPosition: uint64(w.size - w.lay.SegmentDataAt),
				}},
			})
		}
		if err := ebml.Marshal(&struct {
			Cluster struct {
				Timecode uint64 `ebml:"Timecode"`
			} `ebml:"Cluster,size=unknown"`
		}{struct {
			Timecode uint64 `ebml:"Timecode"`
		}{uint64(ms)}}, &w.buf); err != nil {
			return err
		}
	}
	if err := ebml.Marshal(&struct {
		Block ebml.Block `ebml:"SimpleBlock"`
	}{ebml.Block{
		TrackNumber: track,
		Timecode:    int16(ms - w.clusMs),
		Keyframe:    keyframe,
		Data:        [][]byte{data},
	}}, &w.buf); err != nil {
		return err
	}
	w.endMs = max(w.endMs, ms+durMs)
	return w.write(w.buf.Bytes())
}

// sync makes what was written durable.
func (w *webmFile) sync() error {
	if !w.dirty {
		return nil
	}
	w.dirty = false
	return w.f.Sync()
}

// finish appends the Cues, fills the SeekHead and Duration reserved in the
// header, syncs and closes the file. The Segment and Clusters keep their
// unknown sizes: a finite Segment around unknown-size Clusters is not
// allowed, and players handle live-mode files with Cues well.
func (w *webmFile) finish() error {
	err := w.complete()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (w *webmFile) complete() error {
	seeks := []seekEntry{
		{ebml.ElementInfo.Bytes(), uint64(w.lay.InfoAt - w.lay.SegmentDataAt)},
		{ebml.ElementTracks.Bytes(), uint64(w.lay.TracksAt - w.lay.SegmentDataAt)},
	}
	if len(w.cues) > 0 {
		seeks = append(seeks, seekEntry{ebml.ElementCues.Bytes(), uint64(w.size - w.lay.SegmentDataAt)})
		var b bytes.Buffer
		if err := ebml.Marshal(&struct {
			Cues webm.Cues `ebml:"Cues"`
		}{webm.Cues{CuePoint: w.cues}}, &b); err != nil {
			return err
		}
		if err := w.write(b.Bytes()); err != nil {
			return err
		}
	}
	var b bytes.Buffer
	if err := ebml.Marshal(&struct {
		SeekHead struct {
			Seek []seekEntry `ebml:"Seek"`
		} `ebml:"SeekHead"`
	}{struct {
		Seek []seekEntry `ebml:"Seek"`
	}{seeks}}, &b); err != nil {
		return err
	}
	if b.Len() > seekHeadReserve-2 {
		return fmt.Errorf("webm: SeekHead of %d bytes does not fit", b.Len())
	}
	b.Write(voidElement(seekHeadReserve - b.Len()))
	if _, err := w.f.WriteAt(b.Bytes(), w.lay.SeekVoidAt); err != nil {
		return err
	}

	d := []byte{0x44, 0x89, 0x88}
	d = binary.BigEndian.AppendUint64(d, math.Float64bits(float64(w.endMs)))
	if _, err := w.f.WriteAt(d, w.lay.DurationVoidAt); err != nil {
		return err
	}

	w.dirty = true
	return w.sync()
}

// voidElement returns a Void element of exactly n bytes (n ≥ 2).
func voidElement(n int) []byte {
	b := make([]byte, n)
	b[0] = 0xEC
	if n-2 < 0x7f {
		b[1] = 0x80 | byte(n-2)
		return b
	}
	// 8-byte size: 0x01 then 7 bytes.
	binary.BigEndian.PutUint64(b[1:9], uint64(n-9))
	b[1] = 0x01
	return b
}

// scanResult is what the scanner learned of a spool file's clusters.
type scanResult struct {
	end   int64 // offset just past the last complete block
	endMs int64 // end time of the latest block (its time + a frame)
	cues  []webm.CuePoint
}

// scanClusters reads the clusters of a spool file from lay.ClustersAt and
// finds where the last complete block ends, rebuilding the cues. It stops
// at the first incomplete or unexpected element: what follows is a torn
// write (or the Cues of an interrupted finish) and is cut off.
func scanClusters(r io.ReaderAt, fileSize int64, lay layout) scanResult {
	res := scanResult{end: lay.ClustersAt}
	br := bufio.NewReader(io.NewSectionReader(r, lay.ClustersAt, fileSize-lay.ClustersAt))
	pos := lay.ClustersAt
	inCluster := false
	var clusterMs int64
	var clusterAt int64
	cued := false
	const frameMs = 20 // the end of the last block is its start plus about one frame
	for {
		start := pos
		id, n, err := readID(br)
		if err != nil {
			return res
		}
		pos += int64(n)
		size, n, err := readSize(br)
		if err != nil {
			return res
		}
		pos += int64(n)
		switch {
		case id == idCluster && size == unknownSize:
			inCluster, clusterAt, cued = true, start, false
			clusterMs = -1
			continue
		case id == idTimecode && inCluster && size <= 8:
			v, err := readUint(br, int(size))
			if err != nil {
				return res
			}
			pos += int64(size)
			clusterMs = int64(v)
			continue
		case id == idSimpleBlock && inCluster && clusterMs >= 0 && size < 1<<28 && pos+int64(size) <= fileSize:
			blk, err := ebml.UnmarshalBlock(io.LimitReader(br, int64(size)), int64(size))
			if err != nil {
				return res
			}
			pos += int64(size)
			ms := clusterMs + int64(blk.Timecode)
			if blk.Keyframe && blk.TrackNumber == lay.MainTrack && !cued {
				cued = true
				res.cues = append(res.cues, webm.CuePoint{
					CueTime: uint64(max(ms, 0)),
					CueTrackPositions: []webm.CueTrackPosition{{
						CueTrack: blk.TrackNumber, CueClusterPosition: uint64(clusterAt - lay.SegmentDataAt),
					}},
				})
			}
			res.end = pos
			res.endMs = max(res.endMs, ms+frameMs)
			continue
		}
		return res
	}
}

const unknownSize = math.MaxUint64

// readID reads an EBML element ID (1–4 bytes, marker bits kept).
func readID(r *bufio.Reader) (uint64, int, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	n := 1
	for mask := byte(0x80); first&mask == 0; mask >>= 1 {
		n++
		if n > 4 {
			return 0, 0, errors.New("bad element ID")
		}
	}
	v := uint64(first)
	for i := 1; i < n; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		v = v<<8 | uint64(c)
	}
	return v, n, nil
}

// readSize reads an EBML data size (1–8 bytes); all ones is unknownSize.
func readSize(r *bufio.Reader) (uint64, int, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, 0, err
	}
	if first == 0 {
		return 0, 0, errors.New("bad element size")
	}
	n := 1
	mask := byte(0x80)
	for first&mask == 0 {
		n++
		mask >>= 1
	}
	v := uint64(first & (mask - 1))
	allOnes := v == uint64(mask-1)
	for i := 1; i < n; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, 0, err
		}
		v = v<<8 | uint64(c)
		allOnes = allOnes && c == 0xff
	}
	if allOnes {
		return unknownSize, n, nil
	}
	return v, n, nil
}

func readUint(r *bufio.Reader, n int) (uint64, error) {
	var v uint64
	for i := 0; i < n; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// repairWebM makes a spool file left by a crash complete: it cuts off a
// torn tail, then writes the Cues, SeekHead and Duration as finish would
// have.
func repairWebM(path string, lay layout) (endMs int64, err error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	if st.Size() < lay.ClustersAt {
		f.Close()
		return 0, fmt.Errorf("webm: %s is shorter than its header", path)
	}
	res := scanClusters(f, st.Size(), lay)
	if err := f.Truncate(res.end); err != nil {
		f.Close()
		return 0, err
	}
	w := &webmFile{f: f, lay: lay, size: res.end, cues: res.cues, endMs: res.endMs}
	if _, err := f.Seek(res.end, io.SeekStart); err != nil {
		f.Close()
		return 0, err
	}
	return res.endMs, w.finish()
}
