package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// loadProject writes watt.json and the directories of apps a and b into a
// temporary project and loads it.
func loadProject(t *testing.T, wattJSON string, environ ...string) (*Config, error) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "watt.json"), []byte(wattJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	return Load(dir, "", environ)
}

func TestHealthOverridesPerKey(t *testing.T) {
	cfg, err := loadProject(t, `{
		"entrypoint": "a",
		"health": {"interval": 2000, "maxELU": "{MAX_ELU}", "maxHeapTotal": "512 MB", "path": "/healthz", "maxYoungGeneration": 1024, "maxUnresponsive": 10000},
		"applications": [
			{"id": "a", "path": "a", "health": {"maxELU": 0.5, "gracePeriod": 0, "maxHeapTotal": "1GiB", "timeout": 250, "maxUnresponsive": 0}},
			{"id": "b", "path": "b", "health": {"enabled": false}}
		]
	}`, "MAX_ELU=0.8")
	if err != nil {
		t.Fatal(err)
	}
	runtime := Health{
		Enabled: true, Interval: 2 * time.Second, GracePeriod: 30 * time.Second, MaxUnhealthyChecks: 10,
		MaxELU: 0.8, MaxHeapUsed: 0.99, MaxHeapTotal: 512 << 20, Path: "/healthz", Timeout: 5 * time.Second,
		HeapSet: true, MaxYoungGeneration: 1024, MaxUnresponsive: 10 * time.Second,
	}
	if cfg.Health != runtime {
		t.Errorf("runtime health:\n got %+v\nwant %+v", cfg.Health, runtime)
	}
	a := runtime
	a.MaxELU, a.GracePeriod, a.MaxHeapTotal, a.Timeout, a.MaxUnresponsive = 0.5, 0, 1<<30, 250*time.Millisecond, 0
	if cfg.Applications[0].Health != a {
		t.Errorf("app a health:\n got %+v\nwant %+v", cfg.Applications[0].Health, a)
	}
	b := runtime
	b.Enabled = false
	if cfg.Applications[1].Health != b {
		t.Errorf("app b health:\n got %+v\nwant %+v", cfg.Applications[1].Health, b)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
}

func TestHealthIntervalBelowMinimumWarns(t *testing.T) {
	cfg, err := loadProject(t, `{"health": {"interval": 10}, "applications": [{"id": "a", "path": "a"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Applications[0].Health.Interval; got != 100*time.Millisecond {
		t.Errorf("interval = %s, want 100ms", got)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "/health/interval") {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
}

func TestHealthProblems(t *testing.T) {
	tests := []struct {
		name, health string
		want         []string // each in the error text
	}{
		{"maxELU above 1", `{"maxELU": 1.5}`, []string{"/applications/0/health/maxELU"}},
		{"unknown key", `{"maxElu": 0.5}`, []string{"/applications/0/health", "maxElu"}},
		{"size without a known unit", `{"maxHeapTotal": "4 parsecs"}`, []string{"/applications/0/health/maxHeapTotal", `unknown unit "parsecs"`}},
		{"size that is not one", `{"maxHeapTotal": "lots"}`, []string{"/applications/0/health/maxHeapTotal", `invalid size "lots"`}},
		{"probe path not absolute", `{"path": "health"}`, []string{"/applications/0/health/path"}},
		{"no checks at all", `{"maxUnhealthyChecks": 0}`, []string{"/applications/0/health/maxUnhealthyChecks"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadProject(t, `{"applications": [{"id": "a", "path": "a", "health": `+tt.health+`}]}`)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Load: %v, want an invalid configuration", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestHeapSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
	}{
		{`4294967296`, 4 << 30},
		{`"4GB"`, 4 << 30},
		{`"4gb"`, 4 << 30},
		{`"0.5 GB"`, 512 << 20},
		{`"512MiB"`, 512 << 20},
		{`"1024kb"`, 1 << 20},
		{`"1024"`, 1024},
		{`"100b"`, 100},
	}
	for _, tt := range tests {
		got, err := heapSize("maxHeapTotal", []byte(tt.in), 1)
		if err != nil || got != tt.want {
			t.Errorf("heapSize(%s) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`"GB"`, `"-1GB"`, `"1 PB"`, `0`, `"0b"`, `true`} {
		if n, err := heapSize("maxHeapTotal", []byte(bad), 1); err == nil {
			t.Errorf("heapSize(%s) = %d, want an error", bad, n)
		}
	}
}

// TestHeapFlags: the V8 heap flags follow the health keys written, as Watt
// sizes its threads' heaps, and are absent when neither was written.
func TestHeapFlags(t *testing.T) {
	tests := []struct {
		name string
		h    Health
		want []string
	}{
		{"nothing written: Node.js sizes the heap", DefaultHealth(), nil},
		{"maxHeapTotal: the old generation gets it less Watt's young generation",
			Health{HeapSet: true, MaxHeapTotal: 1 << 30}, []string{"--max-old-space-size=896"}},
		{"both: old is the rest, young is three semi-spaces",
			Health{HeapSet: true, MaxHeapTotal: 1 << 30, MaxYoungGeneration: 96 << 20},
			[]string{"--max-old-space-size=928", "--max-semi-space-size=32"}},
		{"maxYoungGeneration alone", Health{MaxHeapTotal: DefaultMaxHeapTotal, MaxYoungGeneration: 48 << 20},
			[]string{"--max-semi-space-size=16"}},
		// A larger total never gives a smaller heap: 129MB left a 1 MiB
		// old space, in which Node.js dies at start, where 128MB gave 128.
		{"a total at the young generation", Health{HeapSet: true, MaxHeapTotal: 128 << 20}, []string{"--max-old-space-size=128"}},
		{"a total just above it", Health{HeapSet: true, MaxHeapTotal: 129 << 20}, []string{"--max-old-space-size=128"}},
		{"a total of twice it", Health{HeapSet: true, MaxHeapTotal: 256 << 20}, []string{"--max-old-space-size=128"}},
		{"a total above twice it", Health{HeapSet: true, MaxHeapTotal: 300 << 20}, []string{"--max-old-space-size=172"}},
		{"a total below it", Health{HeapSet: true, MaxHeapTotal: 64 << 20}, []string{"--max-old-space-size=64"}},
		{"sizes below 1 MiB round up to 1", Health{HeapSet: true, MaxHeapTotal: 100, MaxYoungGeneration: 1024},
			[]string{"--max-old-space-size=1", "--max-semi-space-size=1"}},
	}
	for _, tt := range tests {
		if got := tt.h.HeapFlags(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	// Written in the file, a bad size names its key.
	_, err := loadProject(t, `{"entrypoint": "a", "health": {"maxYoungGeneration": "lots"}, "applications": [{"id": "a", "path": "a"}]}`)
	if err == nil || !strings.Contains(err.Error(), "/health/maxYoungGeneration: maxYoungGeneration:") {
		t.Errorf("bad maxYoungGeneration: %v", err)
	}
}

// TestEventLoopDelayKeys: Watt's delay limits load (ms, placeholders
// too) with no warning, per application over the runtime's, and turn the
// sampling on only where one is set.
func TestEventLoopDelayKeys(t *testing.T) {
	cfg, err := loadProject(t, `{
		"entrypoint": "a",
		"health": {"maxEventLoopDelay": 200, "maxEventLoopDelayP99": "{P99}"},
		"applications": [
			{"id": "a", "path": "a"},
			{"id": "b", "path": "b", "health": {"maxEventLoopDelay": 0, "maxEventLoopDelayP99": 0}}
		]
	}`, "P99=50")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
	a, b := cfg.Applications[0].Health, cfg.Applications[1].Health
	if a.MaxEventLoopDelay != 200*time.Millisecond || a.MaxEventLoopDelayP99 != 50*time.Millisecond || !a.JudgesDelay() {
		t.Errorf("app a: delay %s, p99 %s, judged %v", a.MaxEventLoopDelay, a.MaxEventLoopDelayP99, a.JudgesDelay())
	}
	if b.JudgesDelay() {
		t.Errorf("app b judges the delay with both limits 0: %+v", b)
	}
	_, err = loadProject(t, `{"entrypoint": "a", "health": {"maxEventLoopDelay": -1}, "applications": [{"id": "a", "path": "a"}]}`)
	if err == nil || !strings.Contains(err.Error(), "/health/maxEventLoopDelay") {
		t.Errorf("negative maxEventLoopDelay: %v", err)
	}
}

// TestStreamSizeKeys: Watt's bufferPoolSize and defaultHighWaterMark load
// as sizes with no warning, and stay 0 (Node.js's own) when not written.
func TestStreamSizeKeys(t *testing.T) {
	cfg, err := loadProject(t, `{
		"entrypoint": "a",
		"health": {"bufferPoolSize": "256KB"},
		"applications": [
			{"id": "a", "path": "a", "health": {"defaultHighWaterMark": 65536}},
			{"id": "b", "path": "b"}
		]
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("warnings: %q", cfg.Warnings)
	}
	if a := cfg.Applications[0].Health; a.BufferPoolSize != 256<<10 || a.HighWaterMark != 64<<10 {
		t.Errorf("app a: pool %d, highWaterMark %d", a.BufferPoolSize, a.HighWaterMark)
	}
	if b := cfg.Applications[1].Health; b.BufferPoolSize != 256<<10 || b.HighWaterMark != 0 {
		t.Errorf("app b: pool %d, highWaterMark %d; want the runtime's pool and no highWaterMark", b.BufferPoolSize, b.HighWaterMark)
	}
	_, err = loadProject(t, `{"entrypoint": "a", "health": {"defaultHighWaterMark": "lots"}, "applications": [{"id": "a", "path": "a"}]}`)
	if err == nil || !strings.Contains(err.Error(), "/health/defaultHighWaterMark: defaultHighWaterMark:") {
		t.Errorf("bad defaultHighWaterMark: %v", err)
	}
	// Node.js could not allocate a pool this large: refused at load.
	_, err = loadProject(t, `{"entrypoint": "a", "health": {"bufferPoolSize": "2GB"}, "applications": [{"id": "a", "path": "a"}]}`)
	if err == nil || !strings.Contains(err.Error(), "/health/bufferPoolSize: bufferPoolSize: expected at most 1GB, got ") {
		t.Errorf("2GB bufferPoolSize: %v", err)
	}
}

// TestHealthMinimums: an interval or maxUnresponsive below its minimum is
// raised to it with a warning naming the key.
func TestHealthMinimums(t *testing.T) {
	cfg, err := loadProject(t, `{
		"entrypoint": "a",
		"health": {"interval": 20, "maxUnresponsive": 100},
		"applications": [{"id": "a", "path": "a"}, {"id": "b", "path": "b", "health": {"maxUnresponsive": 0}}]
	}`)
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.Applications[0].Health; h.Interval != MinHealthInterval || h.MaxUnresponsive != MinMaxUnresponsive {
		t.Errorf("app a: interval %s, maxUnresponsive %s", h.Interval, h.MaxUnresponsive)
	}
	if h := cfg.Applications[1].Health; h.MaxUnresponsive != 0 {
		t.Errorf("app b: maxUnresponsive %s, want 0 (off)", h.MaxUnresponsive)
	}
	text := strings.Join(cfg.Warnings, "\n")
	for _, want := range []string{"/health/interval", "/health/maxUnresponsive: maxUnresponsive 100ms is below the minimum; 300ms is used"} {
		if !strings.Contains(text, want) {
			t.Errorf("warnings lack %q:\n%s", want, text)
		}
	}
}
