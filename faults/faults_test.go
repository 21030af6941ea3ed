package faults

import (
	"testing"
)

// TestFaults runs every fault scenario against servers it shares where
// that is safe: one PostgreSQL and one MinIO for the scenarios that do not
// kill or restart them (each takes a database and a bucket of its own),
// private ones for those that do. Scenarios run in parallel, as many at a
// time as go test -parallel allows.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault tests start real servers")
	}
	cl := startCluster(t)
	t.Run("scenarios", func(t *testing.T) {
		for _, sc := range []struct {
			name string
			run  func(*testing.T, *cluster)
		}{
			// The longest first: they start in this order, -parallel
			// at a time (TestMain makes that 3 unless it is given).
			{"PostgresRestart", testPostgresRestart},
			{"MinIOFrozen", testMinIOFrozen},
			{"MinIOKilled", testMinIOKilled},
			{"ChamberKilled", testChamberKilled},
			{"ConcurrentWriters", testConcurrentWriters},
			{"DiskFull", testDiskFull},
		} {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				sc.run(t, cl)
			})
		}
	})
}
