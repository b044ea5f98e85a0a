package listeners

import (
	"path/filepath"
	"testing"
)

func BenchmarkQueued(b *testing.B) {
	tcp, _, err := TCP("127.0.0.1", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer tcp.Close()
	ux, err := Unix(filepath.Join(b.TempDir(), "s.sock"))
	if err != nil {
		b.Fatal(err)
	}
	defer ux.Close()
	b.Run("tcp", func(b *testing.B) {
		for b.Loop() {
			if _, err := Queued(tcp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unix", func(b *testing.B) {
		for b.Loop() {
			if _, err := Queued(ux); err != nil {
				b.Fatal(err)
			}
		}
	})
}
