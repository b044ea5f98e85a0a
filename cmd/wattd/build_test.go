package main

import (
	"slices"
	"testing"

	"github.com/wattd/wattd/supervisor/config"
)

func TestBuildOrder(t *testing.T) {
	app := func(id string, deps ...string) config.Application {
		return config.Application{ID: id, Dependencies: deps}
	}
	for _, c := range []struct {
		name  string
		entry string
		apps  []config.Application
		want  []string
	}{
		{"config order, entrypoint last", "web", []config.Application{app("web"), app("api"), app("db")}, []string{"api", "db", "web"}},
		{"dependencies first", "web", []config.Application{app("web", "api"), app("api", "db"), app("db")}, []string{"db", "api", "web"}},
		{"entrypoint a dependency", "gw", []config.Application{app("ui", "gw"), app("gw")}, []string{"gw", "ui"}},
		{"diamond", "a", []config.Application{app("a", "b", "c"), app("b", "d"), app("c", "d"), app("d")}, []string{"d", "b", "c", "a"}},
	} {
		got := buildOrder(&config.Config{Entrypoint: c.entry, Applications: c.apps})
		ids := make([]string, len(got))
		for i, a := range got {
			ids[i] = a.ID
		}
		if !slices.Equal(ids, c.want) {
			t.Errorf("%s: %v, want %v", c.name, ids, c.want)
		}
	}
}
