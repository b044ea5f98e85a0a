package supervisor

import (
	"math"
	"testing"
)

func TestFormatBytes(t *testing.T) {
	for in, want := range map[uint64]string{
		0:                  "0 B",
		1023:               "1023 B",
		1024:               "1.0 KiB",
		1536:               "1.5 KiB",
		45193625:           "43.1 MiB",
		1<<20 - 1:          "1.0 MiB",
		5 << 30:            "5.0 GiB",
		3 << 40:            "3.0 TiB",
		math.MaxUint64:     "16.0 EiB",
		1024*1024*1024 - 1: "1.0 GiB",
	} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
