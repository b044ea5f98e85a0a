package ipc

import (
	"context"
	"strings"
	"testing"
)

// TestReportStats: ReportStats sends wattd the Go runtime's figures as
// Prometheus series, the app's own after them and its open connections,
// at once and then every WATTD_STATS_INTERVAL_MS; an app whose own text
// has the Go collector's series does not get them twice.
func TestReportStats(t *testing.T) {
	t.Setenv(EnvStatsInterval, "20")
	ctl, wattd := dialInProcess(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- ctl.ReportStats(ctx, StatsOptions{
			AppMetrics:  func() string { return "# TYPE jobs_total counter\njobs_total 3\n" },
			ActiveConns: func() int { return 4 },
		})
	}()
	for i := range 3 {
		m, err := ReadMessage(wattd)
		if err != nil || m.Type != TypeStats || m.Stats == nil {
			t.Fatalf("report %d: %+v %v", i, m, err)
		}
		st := m.Stats
		if st.ActiveConns != 4 || st.HeapTotal != 0 || st.HeapUsed != 0 {
			t.Errorf("report %d: conns %d, heap %d/%d; want 4 and no V8 heap figures", i, st.ActiveConns, st.HeapUsed, st.HeapTotal)
		}
		for _, want := range []string{"\ngo_goroutines ", "\ngo_memstats_alloc_bytes ", "\ngo_gc_gomemlimit_bytes ", "\ngo_threads ", "go_info{version=\"go", "# TYPE go_gc_cycles_total counter\n", "\njobs_total 3\n"} {
			if !strings.Contains(st.AppMetrics, want) {
				t.Errorf("report %d lacks %q:\n%s", i, want, st.AppMetrics)
			}
		}
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Errorf("ReportStats returned %v, want context.Canceled", err)
	}

	own := "# TYPE go_goroutines gauge\ngo_goroutines 7\n"
	go ctl.ReportStats(context.Background(), StatsOptions{AppMetrics: func() string { return own }})
	for {
		m, err := ReadMessage(wattd)
		if err != nil {
			t.Fatal(err)
		}
		// Reports of the first ReportStats may still be in the socket.
		if m.Type != TypeStats || !strings.Contains(m.Stats.AppMetrics, "go_goroutines 7") {
			continue
		}
		if m.Stats.AppMetrics != own {
			t.Fatalf("the app's own Go series and the SDK's together:\n%s", m.Stats.AppMetrics)
		}
		break
	}
}

// TestReportStatsOverSizeAppMetrics: app metrics over MaxAppMetrics (or
// under it but escaped by JSON past a frame) are left out while the
// reports go on with the Go runtime's figures; a worker whose registry
// grew must not stop reporting and be taken for a stuck one.
func TestReportStatsOverSizeAppMetrics(t *testing.T) {
	t.Setenv(EnvStatsInterval, "20")
	for name, text := range map[string]string{
		"over the bound":         "# TYPE big gauge\n" + strings.Repeat("big{k=\"v\"} 1\n", MaxAppMetrics/10),
		"escaped past the frame": "# HELP esc x\n# TYPE esc gauge\nesc{k=\"" + strings.Repeat("\x01", MaxAppMetrics-64) + "\"} 1\n",
	} {
		t.Run(name, func(t *testing.T) {
			ctl, wattd := dialInProcess(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := make(chan struct{}, 100)
			done := make(chan error, 1)
			go func() {
				done <- ctl.ReportStats(ctx, StatsOptions{AppMetrics: func() string { calls <- struct{}{}; return text }})
			}()
			for i := range 3 {
				m, err := ReadMessage(wattd)
				if err != nil || m.Type != TypeStats || m.Stats == nil {
					t.Fatalf("report %d: %+v %v", i, m, err)
				}
				if !strings.Contains(m.Stats.AppMetrics, "\ngo_goroutines ") || strings.Contains(m.Stats.AppMetrics, "big{") || strings.Contains(m.Stats.AppMetrics, "esc{") {
					t.Fatalf("report %d carries:\n%.300s", i, m.Stats.AppMetrics)
				}
			}
			select {
			case err := <-done:
				t.Fatalf("ReportStats stopped: %v", err)
			default:
			}
			if n := len(calls); name == "over the bound" && n != 1 {
				t.Errorf("AppMetrics called %d times in three reports, want once (then left alone)", n)
			}
			// Ended before the next test: its reports allocate, which the
			// fuzz test's bound on allocations would count.
			cancel()
			wattd.Close()
			<-done
		})
	}
}
