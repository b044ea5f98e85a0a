package procnet

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestReadStatRSS: the resident size from /proc/<pid>/stat agrees with
// /proc/<pid>/statm's, the file it replaces, and grows when the process
// touches more memory.
func TestReadStatRSS(t *testing.T) {
	statm := func() uint64 {
		b, err := os.ReadFile("/proc/self/statm")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(strings.Fields(string(b))[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n * uint64(os.Getpagesize())
	}
	st, ok := ReadStat(os.Getpid())
	want := statm()
	if !ok || st.RSS == 0 {
		t.Fatalf("ReadStat(self) = %+v, %v", st, ok)
	}
	// Read a moment apart: within 4 MiB of each other.
	if d := int64(st.RSS) - int64(want); d > 4<<20 || d < -4<<20 {
		t.Errorf("stat RSS %d, statm %d", st.RSS, want)
	}
	buf := make([]byte, 64<<20)
	for i := range len(buf) / 4096 {
		buf[i*4096] = 1
	}
	after, _ := ReadStat(os.Getpid())
	if after.RSS < st.RSS+48<<20 {
		t.Errorf("RSS %d after touching 64 MiB, %d before", after.RSS, st.RSS)
	}
	_ = buf[len(buf)-1]
	if _, ok := ReadStat(-1); ok {
		t.Error("ReadStat(-1) reports ok")
	}
}
