package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
)

// configBackend is a fakeBackend that also says what it runs.
type configBackend struct {
	*fakeBackend
	cfg *config.Config
}

func (b configBackend) Config() *config.Config { return b.cfg }

func (b configBackend) WorkerEnv(id string, worker int) (supervisor.WorkerEnv, error) {
	if worker != 1 {
		return supervisor.WorkerEnv{}, fmt.Errorf("%w %q worker %d", ErrNotFound, id, worker)
	}
	return supervisor.WorkerEnv{App: id, Worker: 1, PID: 102, Env: []string{"PORT=3001", "API_KEY=k-1", "MODE=fast"}}, nil
}

func (b configBackend) RuntimeEnv() supervisor.RuntimeEnv {
	return supervisor.RuntimeEnv{PID: 100, Env: []string{"PATH=/bin", "DB_PASSWORD=pw-1", "REGION=eu"}}
}

func newConfigBackend() configBackend {
	return configBackend{newFakeBackend(), &config.Config{
		Entrypoint: "web",
		Env:        map[string]string{"DB_PASSWORD": "pw-1", "REGION": "eu"},
		Applications: []config.Application{
			{ID: "web", Env: map[string]string{"API_KEY": "k-1", "MODE": "fast"}},
		},
	}}
}

func TestConfigAndEnvRoutes(t *testing.T) {
	_, c := startServer(t, newConfigBackend())
	ctx := testCtx(t)
	cfg, err := c.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := fmt.Sprint(cfg)
	if strings.Contains(s, "pw-1") || strings.Contains(s, "k-1") || !strings.Contains(s, "REGION:eu") || !strings.Contains(s, "MODE:fast") {
		t.Errorf("config = %s: want secrets masked, the rest kept", s)
	}
	env, err := c.Env(ctx, "web", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(env.Env, " "); got != "PORT=3001 API_KEY=[redacted] MODE=fast" || env.PID != 102 {
		t.Errorf("env = %+v", env)
	}
	renv, err := c.RuntimeEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(renv.Env, " "); got != "PATH=/bin DB_PASSWORD=[redacted] REGION=eu" || renv.PID != 100 {
		t.Errorf("runtime env = %+v", renv)
	}
	if _, err := c.Env(ctx, "nope", 0); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "api, web") {
		t.Errorf("env of an unknown app: %v; want ErrNotFound naming the apps", err)
	}
	if _, err := c.Env(ctx, "web", 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("env of an unknown worker: %v", err)
	}
	resp, _ := rawRequest(t, c.Socket(), "GET", "/v1/apps/web/env?worker=x")
	if resp.StatusCode != 400 {
		t.Errorf("worker=x: status %d, want 400", resp.StatusCode)
	}
}

func TestConfigAndEnvNotForStrangers(t *testing.T) {
	sock := filepath.Join(shortTemp(t), "admin.sock")
	stranger := func(net.Conn) (peerCred, error) { return peerCred{uid: 4242, pid: 7}, nil }
	s, err := serve(context.Background(), sock, newConfigBackend(), zaptest.NewLogger(t), options{selfUID: 1000, peerOf: stranger})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := NewClient(sock)
	defer c.Close()
	ctx := testCtx(t)
	if _, err := c.Config(ctx); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("config for a stranger: %v", err)
	}
	if _, err := c.Env(ctx, "web", 1); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("env for a stranger: %v", err)
	}
}
