// Command wattd is the application server: it runs the applications of a
// watt.json as supervised worker processes, and administers a running
// instance with `wattd ctl`.
package main

import (
	"os"

	_ "github.com/wattd/wattd/capabilities/node" // the default capability
	"github.com/wattd/wattd/supervisor"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == supervisor.ExecHelperArg {
		supervisor.ExecHelperMain(os.Args[2:]) // never returns
	}
	os.Exit(run(os.Args))
}
