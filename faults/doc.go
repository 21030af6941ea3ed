// Package faults holds Chamber's fault tests: they build the real binary,
// start it against a PostgreSQL server and a MinIO server of their own
// (testenv.StartPostgres, testenv.StartMinIO), inject real faults — MinIO
// killed or frozen mid-upload and at completion, PostgreSQL restarted fast
// and immediate during a hearing with media, chamber serve killed during an
// upload, a signature, a seal and a recording and started again on the same
// data, the local store's disk filled, twenty writers on one session — and
// after each check the record (see docs/evidence.md, "Fault tests"):
//
//   - every acknowledged (2xx) write is present exactly once; a write
//     whose answer was lost or 503 at most once; a refused one never;
//   - no object outside the record is visible in document lists,
//     downloads or bundles, and `chamber evidence reconcile` journals every
//     orphan exactly once;
//   - `chamber journal verify` passes and bundles verify offline;
//   - the act can still be signed and sealed;
//   - every recording plays (`ffmpeg -v error` prints nothing).
//
// TestSoak, run by scripts/soak and never in CI, churns hearings against
// the binary for a long time and samples its memory, goroutines and file
// descriptors.
//
// The package has no code of its own: everything is in its tests.
package faults
