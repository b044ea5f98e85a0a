// Command wattd is the application server: it runs the applications of a
// watt.json as supervised worker processes, and administers a running
// instance with `wattd ctl`.
package main

import (
	"os"

	_ "github.com/wattd/wattd/capabilities/command" // any executable, chosen in watt.json
	_ "github.com/wattd/wattd/capabilities/gocap"   // Go apps (go.mod)
	_ "github.com/wattd/wattd/capabilities/next"
	_ "github.com/wattd/wattd/capabilities/node" // the default capability
	"github.com/wattd/wattd/capabilities/vite"   // also the static server its workers run
	// The exec helper (wattd re-executed to start a worker) runs from the
	// init function of package exechelper and never reaches main.
	_ "github.com/wattd/wattd/supervisor/exechelper"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == vite.StaticArg {
		os.Exit(vite.StaticMain(os.Args[2:]))
	}
	os.Exit(run(os.Args))
}
