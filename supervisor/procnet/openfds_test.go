package procnet

import (
	"os"
	"testing"
)

func TestOpenFDs(t *testing.T) {
	before, ok := OpenFDs(os.Getpid())
	if !ok || before < 3 {
		t.Fatalf("OpenFDs(self) = %d, %v; want at least stdin, stdout, stderr", before, ok)
	}
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Other tests may open descriptors meanwhile: at least one more.
	if after, _ := OpenFDs(os.Getpid()); after < before+1 {
		t.Errorf("after opening one file: %d descriptors, want at least %d", after, before+1)
	}
	if _, ok := OpenFDs(-1); ok {
		t.Error("OpenFDs(-1) reports ok")
	}
}
