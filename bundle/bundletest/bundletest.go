// Package bundletest holds what tests of evidence bundles share: the one
// way of damaging a file inside a bundle.
package bundletest

import (
	"archive/zip"
	"bytes"
	"io"
	"testing"
)

// Flip returns a copy of the zip z in which one byte in the middle of the
// file called name is changed (an empty file gains a byte); every other
// file is copied unchanged, in order.
func Flip(t testing.TB, z []byte, name string) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if f.Name == name {
			if len(data) == 0 {
				data = []byte{0}
			} else {
				data[len(data)/2] ^= 0x01
			}
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: f.Method, Modified: f.Modified})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
