package catalog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chamber-court/chamber/database"
	"github.com/chamber-court/chamber/database/databasetest"
	"github.com/chamber-court/chamber/evidence"
	"github.com/chamber-court/chamber/evidence/catalog"
	"github.com/chamber-court/chamber/evidence/evidencetest"
)

// BenchmarkReconcile measures one reconciliation pass over 20 sessions of
// 25 recorded objects each (500 objects), on PostgreSQL with the store
// local or in MinIO: what --evidence-reconcile-interval costs.
//
//	go test -run '^$' -bench BenchmarkReconcile -benchtime 5x ./evidence/catalog/
func BenchmarkReconcile(b *testing.B) {
	for _, st := range []struct {
		name  string
		store func(testing.TB) evidence.Store
	}{
		{"local", func(t testing.TB) evidence.Store { return evidencetest.Local(t) }},
		{"minio", func(t testing.TB) evidence.Store { return evidencetest.MinIO(t) }},
	} {
		b.Run(st.name, func(b *testing.B) {
			db := databasetest.Open(b, database.Postgres)
			store := st.store(b)
			const sessions, objects = 20, 25
			for range sessions {
				fx := newFixture(b, db, store)
				var objs []catalog.Object
				for i := range objects {
					obj, err := store.Put(context.Background(), fx.key(fmt.Sprintf("documents/d%d/v1.pdf", i)), strings.NewReader(fmt.Sprint(i)), evidence.PutOptions{})
					if err != nil {
						b.Fatal(err)
					}
					objs = append(objs, catalog.Of(catalog.Upload, obj))
				}
				fx.record(b, time.Time{}, objs...)
			}
			c := catalog.New(catalog.Config{DB: db, Store: store, Journal: nil, Logger: discard, Grace: time.Nanosecond})
			b.ResetTimer()
			for b.Loop() {
				rep, err := c.Reconcile(context.Background())
				if err != nil || rep.Recorded != sessions*objects {
					b.Fatalf("%+v, %v", rep, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*sessions*objects), "µs/object")
		})
	}
}
