package cgroups

import "github.com/wattd/wattd/supervisor/config"

// config.Resources converts to Limits, which is how the supervisor hands
// an application's resolved limits to Worker; this stops compiling if the
// two drift apart.
var _ = Limits(config.Resources{})
