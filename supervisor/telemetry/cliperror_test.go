package telemetry

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestClipError(t *testing.T) {
	cause := errors.New("rpc error: code = Unavailable desc = connection refused")
	timeout := errors.New("exporter export timeout")
	if got := clipError(fmt.Errorf("%w: %w", timeout, cause)); got != "exporter export timeout: rpc error: code = Unavailable desc = connection refused" {
		t.Errorf("a wrapped cause: %q", got)
	}
	many := make([]error, 2000)
	for i := range many {
		many[i] = errors.New("write spans.jsonl: no space left on device")
	}
	got := clipError(errors.Join(many...))
	if got != "write spans.jsonl: no space left on device (and 1999 more errors)" {
		t.Errorf("the same error per span: %q", got)
	}
	long := errors.New(strings.Repeat("é", 1000))
	if got := clipError(long); len(got) > maxErrorText || !strings.HasSuffix(got, "…") {
		t.Errorf("a long error: %d bytes, %q…", len(got), got[:20])
	}
}
