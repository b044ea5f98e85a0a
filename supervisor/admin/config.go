package admin

import (
	"fmt"
	"net/http"

	"github.com/wattd/wattd/supervisor"
	"github.com/wattd/wattd/supervisor/config"
	"github.com/wattd/wattd/supervisor/secrets"
)

// ConfigSource is a Backend that can say what it runs: its resolved
// configuration (GET /v1/config) and a worker's environment (GET
// /v1/apps/{id}/env).
type ConfigSource interface {
	Config() *config.Config
	WorkerEnv(id string, worker int) (supervisor.WorkerEnv, error)
	RuntimeEnv() supervisor.RuntimeEnv
}

var _ ConfigSource = (*supervisor.Runtime)(nil)

// configSource is the back end as a ConfigSource, or errUnsupported for
// what (config, env).
func (s *Server) configSource(what string) (ConfigSource, error) {
	src, ok := s.b.(ConfigSource)
	if !ok {
		return nil, fmt.Errorf("%s: %w", what, errUnsupported)
	}
	return src, nil
}

// getConfig answers the running configuration with secrets masked (see
// package secrets): what `wattd ctl config` prints.
func (s *Server) getConfig(*http.Request) (int, any, error) {
	src, err := s.configSource("config")
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, secrets.Tree(src.Config()), nil
}

// getRuntimeEnv answers the runtime's environment, the one every worker
// starts from, with secret values masked.
func (s *Server) getRuntimeEnv(*http.Request) (int, any, error) {
	src, err := s.configSource("env")
	if err != nil {
		return 0, nil, err
	}
	env := src.RuntimeEnv()
	env.Env = secrets.Environ(env.Env)
	return http.StatusOK, env, nil
}

// getEnv answers the environment of one worker (query worker=N, default
// 0) with secret values masked.
func (s *Server) getEnv(r *http.Request) (int, any, error) {
	src, err := s.configSource("env")
	if err != nil {
		return 0, nil, err
	}
	id, worker, err := s.appWorker(r)
	if err != nil {
		return 0, nil, err
	}
	env, err := src.WorkerEnv(id, max(worker, 0)) // worker 0 unless asked
	if err != nil {
		return 0, nil, err
	}
	env.Env = secrets.Environ(env.Env)
	return http.StatusOK, env, nil
}
