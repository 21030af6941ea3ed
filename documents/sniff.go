package documents

import (
	"bytes"
	"mime"
	"path"
	"strings"
	"unicode/utf8"
)

// Accepted content types. Anything else is refused at upload.
const (
	TypePDF  = "application/pdf"
	TypeJPEG = "image/jpeg"
	TypePNG  = "image/png"
	TypeWebM = "video/webm"
	TypeMP4  = "video/mp4"
	TypeOgg  = "application/ogg"
	TypeText = "text/plain"
)

// sniffLen is how much of the start of a file Sniff looks at.
const sniffLen = 512

// Sniff names the type of a file from its first bytes, or "" when it is none
// of the accepted types. It decides by magic numbers, never by name.
func Sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return TypePDF
	case bytes.HasPrefix(head, []byte{0xFF, 0xD8, 0xFF}):
		return TypeJPEG
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return TypePNG
	case bytes.HasPrefix(head, []byte{0x1A, 0x45, 0xDF, 0xA3}):
		// EBML: WebM when the DocType says so (Matroska is not accepted).
		if bytes.Contains(head[:min(len(head), 64)], []byte("webm")) {
			return TypeWebM
		}
		return ""
	case len(head) >= 12 && string(head[4:8]) == "ftyp":
		return TypeMP4
	case bytes.HasPrefix(head, []byte("OggS")):
		return TypeOgg
	case isText(head):
		return TypeText
	}
	return ""
}

// isText accepts UTF-8 without control characters other than whitespace. A
// multi-byte rune cut off at the end of head is allowed.
func isText(head []byte) bool {
	if len(head) == 0 {
		return false
	}
	for i := 0; i < len(head); {
		r, size := utf8.DecodeRune(head[i:])
		if r == utf8.RuneError && size <= 1 {
			if len(head)-i < utf8.UTFMax && !utf8.FullRune(head[i:]) {
				return true
			}
			return false
		}
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' && r != '\f' {
			return false
		}
		if r == 0x7f {
			return false
		}
		i += size
	}
	return true
}

// claimedType is what the uploader says a file is: the Content-Type they
// sent (unless generic), else what its name's extension means. "" means no
// claim.
func claimedType(contentType, name string) string {
	if contentType != "" {
		if mt, _, err := mime.ParseMediaType(contentType); err == nil {
			mt = strings.ToLower(mt)
			if mt != "application/octet-stream" && mt != "multipart/form-data" && mt != "application/x-www-form-urlencoded" {
				return normalise(mt)
			}
		}
	}
	switch strings.ToLower(path.Ext(name)) {
	case ".pdf":
		return TypePDF
	case ".jpg", ".jpeg":
		return TypeJPEG
	case ".png":
		return TypePNG
	case ".webm":
		return TypeWebM
	case ".mp4", ".m4a", ".m4v":
		return TypeMP4
	case ".ogg", ".oga", ".ogv", ".opus":
		return TypeOgg
	case ".txt", ".text":
		return TypeText
	}
	return ""
}

// normalise maps aliases of the accepted types onto them.
func normalise(mt string) string {
	switch mt {
	case "image/jpg", "image/pjpeg":
		return TypeJPEG
	case "audio/webm":
		return TypeWebM
	case "audio/mp4":
		return TypeMP4
	case "audio/ogg", "video/ogg", "audio/opus":
		return TypeOgg
	case "application/x-pdf":
		return TypePDF
	}
	return mt
}

// matches reports whether a claimed type agrees with the sniffed one.
func matches(claimed, sniffed string) bool {
	return claimed == "" || claimed == sniffed
}
