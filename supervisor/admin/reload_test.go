package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

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

// TestScaleBody: the scale route takes exactly {"workers": N} with N a
// whole number; anything else is a bad request (400) that says what is
// wrong, a count out of range is refused (422), nothing is scaled, and
// the request is logged only once it passed.
func TestScaleBody(t *testing.T) {
	b := &changer{fakeBackend: newFakeBackend(), scaled: map[string]int{}}
	sock := filepath.Join(shortTemp(t), "admin.sock")
	core, logged := observer.New(zap.InfoLevel)
	s, err := Serve(context.Background(), sock, b, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	t.Cleanup(hc.CloseIdleConnections)
	for _, c := range []struct {
		body string
		code int
		want string
	}{
		{"", 400, "the body is empty"},
		{"  \n", 400, "the body is empty"},
		{"[]", 400, "the body is an array, not an object"},
		{"null", 400, "the body is null, not an object"},
		{`"2"`, 400, "the body is a string, not an object"},
		{"NaN", 400, "the body is not JSON"},
		{"{}", 400, `the body has no "workers"`},
		{`{"workers":"2"}`, 400, `"workers" must be a number, not "2"`},
		{`{"workers":null}`, 400, `"workers" must be a number, not null`},
		{`{"workers":1.5}`, 400, "must be a whole number"},
		{`{"workers":2.0}`, 400, "must be a whole number"},
		{`{"workers":1e400}`, 400, "must be a whole number"},
		{`{"workers":2} garbage`, 400, "something follows the object"},
		{`{"workers":2}{}`, 400, "something follows the object"},
		{`{"workers":2`, 400, "the body is not JSON"},
		{`{"Workers":2}`, 400, `unknown key "Workers" in the body (keys are case-sensitive)`},
		{`{"workers":2,"x":{"y":1}}`, 400, `unknown key "x"`},
		{`{"workers":2,"workers":3}`, 400, `"workers" is given twice`},
		{strings.Repeat(" ", 5000) + `{"workers":2}`, 400, "larger than 4096 bytes"},
		{`{"workers":0}`, 422, "expected a worker count from 1 to 512, got 0"},
		{`{"workers":-1}`, 422, "got -1"},
		{`{"workers":5000}`, 422, "got 5000"},
		{`{"workers":99999999999999999999}`, 422, "got 99999999999999999999"},
	} {
		resp, err := hc.Post("http://x/v1/apps/api/scale", "application/json", strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var answer struct{ Error string }
		json.Unmarshal(data, &answer)
		if resp.StatusCode != c.code || !strings.Contains(answer.Error, c.want) || strings.Contains(answer.Error, "configuration") {
			t.Errorf("body %.40q: %d %s, want %d with %q", c.body, resp.StatusCode, data, c.code, c.want)
		}
	}
	if len(b.scaled) != 0 {
		t.Errorf("scaled %v by bodies refused", b.scaled)
	}
	if n := logged.FilterMessage("scaling app on request").Len(); n != 0 {
		t.Errorf("%d requests refused were logged as scaling", n)
	}

	resp, err := hc.Post("http://x/v1/apps/api/scale", "application/json", strings.NewReader(` {"workers": 3}`+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || b.scaled["api"] != 3 {
		t.Errorf("scale to 3: %d, scaled %v", resp.StatusCode, b.scaled)
	}
	if l := logged.FilterMessage("scaling app on request").All(); len(l) != 1 || l[0].ContextMap()["workers"] != int64(3) {
		t.Errorf("logged %v", l)
	}
}
