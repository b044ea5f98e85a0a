package supervisor

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/wattd/wattd/ipc"
)

// TestDiagBook: a worker asked for a diagnostic stays exempt until it
// answers, whether or not anybody still waits, but not forever; a late
// answer's file is removed; an answer to nothing is not taken for one.
func TestDiagBook(t *testing.T) {
	var b diagBook
	b.offer([]string{ipc.DiagHeapSnapshot})
	if !b.takes(ipc.DiagHeapSnapshot) || b.takes("cpuProfile") {
		t.Fatal("takes: not what hello offered")
	}
	late := filepath.Join(t.TempDir(), "late.heapsnapshot")
	b.waiting, b.asked = map[uint64]chan ipc.Diagnose{}, map[uint64]askedDiag{1: {at: time.Now(), path: late, blocks: true}}
	if !b.busy() {
		t.Fatal("not busy with a diagnostic asked for and not answered")
	}
	if err := os.WriteFile(late, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b.answered(&ipc.Diagnose{ID: 7, Kind: ipc.DiagHeapSnapshot}) || b.takeAfter() {
		t.Fatal("an answer to nothing was taken")
	}
	if !b.answered(&ipc.Diagnose{ID: 1, Kind: ipc.DiagHeapSnapshot}) || !b.takeAfter() || !b.takeAfter() {
		t.Fatal("the answer nobody waited for was not taken, for the reports of the next second")
	}
	b.afterUntil = time.Now()
	if b.takeAfter() {
		t.Fatal("reports are still not judged after the afterglow")
	}
	if _, err := os.Stat(late); !os.IsNotExist(err) {
		t.Fatalf("the late answer's file is still there: %v", err)
	}
	if b.busy() {
		t.Fatal("busy after the answer")
	}
	// A REPL blocks nothing: its answer leaves the reports judged.
	b.asked[3] = askedDiag{at: time.Now()}
	if !b.answered(&ipc.Diagnose{ID: 3, Kind: ipc.DiagREPL}) || b.takeAfter() {
		t.Fatal("a REPL's answer was not taken, or kept the next report from being judged")
	}
	b.asked[2] = askedDiag{at: time.Now().Add(-diagTimeout), path: late}
	if b.busy() || len(b.asked) != 0 {
		t.Fatal("a worker that never answers stays exempt past diagTimeout")
	}
}
