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
	"github.com/wattd/wattd/supervisor"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == supervisor.ExecHelperArg {
		supervisor.ExecHelperMain(os.Args[2:]) // never returns
	}
	if len(os.Args) > 1 && os.Args[1] == vite.StaticArg {
		os.Exit(vite.StaticMain(os.Args[2:]))
	}
	os.Exit(run(os.Args))
}
