package admin

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/wattd/wattd/supervisor"
)

// changer is a backend that reloads and scales.
type changer struct {
	*fakeBackend
	reloadErr error
	scaled    map[string]int
}

func (c *changer) Reload(ctx context.Context) (supervisor.ReloadResult, error) {
	if c.reloadErr != nil {
		return supervisor.ReloadResult{}, c.reloadErr
	}
	return supervisor.ReloadResult{Changed: []string{"web"}, Unchanged: []string{"api"}}, nil
}

func (c *changer) ScaleApp(ctx context.Context, id string, n int) error {
	if n > 4 {
		return fmt.Errorf("%w: app %q: at most 4", ErrInvalid, id)
	}
	c.scaled[id] = n
	return nil
}

func TestReloadAndScaleRoutes(t *testing.T) {
	b := &changer{fakeBackend: newFakeBackend(), scaled: map[string]int{}}
	s, c := startServer(t, b)
	ctx := testCtx(t)

	res, err := c.Reload(ctx)
	if err != nil || len(res.Changed) != 1 || res.Changed[0] != "web" {
		t.Fatalf("Reload = %+v, %v", res, err)
	}
	st, err := c.Scale(ctx, "api", 3)
	if err != nil || st.ID != "api" || b.scaled["api"] != 3 {
		t.Fatalf("Scale = %+v, %v (scaled %v)", st, err, b.scaled)
	}
	if _, err := c.Scale(ctx, "api", 9); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "at most 4") {
		t.Fatalf("Scale beyond the bound = %v, want a 422 with the reason", err)
	}
	if _, err := c.Scale(ctx, "nope", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Scale of an unknown app = %v", err)
	}

	b.reloadErr = fmt.Errorf("%w: the configuration does not load:\nwatt.json: /workerz: unknown key", supervisor.ErrInvalidConfig)
	if _, err := c.Reload(ctx); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "/workerz: unknown key") {
		t.Fatalf("refused Reload = %v, want a 422 with the whole report", err)
	}
	b.reloadErr = fmt.Errorf("reload refused: a reload or scaling is in progress: %w", ErrConflict)
	if _, err := c.Reload(ctx); !errors.Is(err, ErrConflict) {
		t.Fatalf("Reload during another = %v, want a 409", err)
	}

	// A backend that cannot reload or scale says so.
	_, plain := startServer(t, newFakeBackend())
	if _, err := plain.Reload(ctx); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("Reload on a backend without it = %v", err)
	}
	resp, _ := rawRequest(t, s.Path(), "GET", "/v1/reload")
	if resp.StatusCode != 405 {
		t.Fatalf("GET /v1/reload = %d, want 405", resp.StatusCode)
	}
}
