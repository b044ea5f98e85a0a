package capabilities

import "os"

// WattdBinary is the program to run to start wattd again as a helper (the
// exec helper, the static server): the running binary itself, through
// /proc, rather than the file at its path. A worker started after an
// upgrade replaced that file (a package update, a deploy, `make build`
// under `wattd dev`) would otherwise run another version's helper, and one
// started after the file was removed would fail with "no such file or
// directory", at every restart. Without /proc it is the path.
func WattdBinary() (string, error) {
	const proc = "/proc/self/exe"
	if _, err := os.Stat(proc); err == nil {
		return proc, nil
	}
	return os.Executable()
}
