package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/supervisor/config"
)

// App folders that conventionally hold a project's applications; the first
// one found becomes the autoload path.
var appFolders = []string{"web", "apps", "services", "packages"}

// Names that suggest the application clients talk to.
var entryNames = []string{"gateway", "composer", "web", "frontend", "app", "main", "api"}

var (
	dnsLabel   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	notInLabel = regexp.MustCompile(`[^a-z0-9-]+`)
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:      "init",
		Usage:     "write a watt.json for the applications found in DIR (or for DIR itself when it is one)",
		ArgsUsage: "[DIR]",
		Flags: []cli.Flag{
			dirFlag(),
			&cli.BoolFlag{Name: "force", Usage: "overwrite an existing watt.json"},
			&cli.StringFlag{Name: "entrypoint", Aliases: []string{"e"}, Usage: "`APP` to use as the entrypoint (default: guessed)"},
		},
		Action: func(c *cli.Context) error {
			dir, err := projectDir(c)
			if err != nil {
				return err
			}
			return initProject(dir, c.String("entrypoint"), c.Bool("force"), stdout)
		},
	}
}

type foundApp struct {
	id, dir, capability string
	path                string // as written in watt.json, relative to it
}

// initProject writes DIR/watt.json for the applications discover finds:
// an autoload of their folder when they live in one, else their list.
func initProject(dir, entry string, force bool, out io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return &exitError{exitUsage, err}
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return &exitError{exitUsage, fmt.Errorf("%s is not a directory", abs)}
	}
	target := filepath.Join(abs, "watt.json")
	if _, err := os.Stat(target); err == nil && !force {
		return &exitError{exitUsage, fmt.Errorf("%s exists; use --force to overwrite it", target)}
	}
	// A watt.json would shadow a configuration in another format (JSON
	// comes first in Watt's order of names).
	if other, _ := config.Find(abs); other != "" && other != target && !force {
		return &exitError{exitUsage, fmt.Errorf("%s exists, and a new watt.json would be read instead of it; use --force to write it anyway", other)}
	}
	found := discover(abs)
	folder, apps := found.folder, found.apps
	if len(apps) == 0 {
		msg := fmt.Sprintf("no application found in %s, below it or in %s/{%s}: an application is a folder with a package.json or a go.mod",
			abs, abs, strings.Join(appFolders, ","))
		if len(found.skipped) > 0 {
			msg += "; left out:" + skippedList(abs, found.skipped)
		}
		return &exitError{exitUsage, errors.New(msg)}
	}
	// Folders whose names make the same id (My_App, my-app) get one each.
	seen := map[string]int{}
	for i := range apps {
		id := apps[i].id
		if seen[id]++; seen[id] > 1 {
			apps[i].id = fmt.Sprintf("%s-%d", id, seen[id])
		}
	}
	ids := make([]string, len(apps))
	for i, a := range apps {
		ids[i] = a.id
	}
	if entry == "" {
		entry = guessEntrypoint(apps)
	} else if !slices.Contains(ids, entry) {
		return &exitError{exitUsage, fmt.Errorf("--entrypoint %q is not one of the applications found: %s", entry, strings.Join(ids, ", "))}
	}
	cfg := map[string]any{
		"$schema":    "https://schemas.platformatic.dev/wattpm/3.0.0.json",
		"entrypoint": entry,
		"server":     map[string]any{"hostname": "{PLT_SERVER_HOSTNAME}", "port": "{PLT_SERVER_PORT}"},
		"logger":     map[string]any{"level": "info"},
	}
	if folder != "" {
		autoload := map[string]any{"path": folder}
		// A folder whose name is not an application id (My_App, app.v2)
		// gets the id printed above through a mapping: autoload alone
		// would name the application after the folder, and refuse it.
		mappings := map[string]any{}
		for _, a := range apps {
			if name := filepath.Base(a.dir); name != a.id {
				mappings[name] = map[string]any{"id": a.id}
			}
		}
		if len(mappings) > 0 {
			autoload["mappings"] = mappings
		}
		// Autoload takes every sub-folder: those left out are excluded.
		var exclude []string
		for _, sk := range found.skipped {
			if filepath.Dir(sk.dir) == filepath.Join(abs, folder) {
				exclude = append(exclude, filepath.Base(sk.dir))
			}
		}
		if len(exclude) > 0 {
			autoload["exclude"] = exclude
		}
		cfg["autoload"] = autoload
	} else {
		list := make([]any, 0, len(apps))
		for _, a := range apps {
			list = append(list, map[string]any{"id": a.id, "path": a.path})
		}
		cfg["applications"] = list
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(target, append(b, '\n'), 0o644); err != nil {
		return &exitError{exitFailure, err}
	}
	envPath := filepath.Join(abs, ".env")
	_, statErr := os.Stat(envPath)
	added, err := addServerEnv(envPath)
	if err != nil {
		return &exitError{exitFailure, err}
	}
	fmt.Fprintf(out, "wrote %s\n", target)
	switch {
	case len(added) > 0 && errors.Is(statErr, os.ErrNotExist):
		fmt.Fprintf(out, "wrote %s with %s\n", envPath, strings.Join(added, ", "))
	case len(added) > 0:
		fmt.Fprintf(out, "added %s to %s\n", strings.Join(added, ", "), envPath)
	}
	for _, a := range apps {
		mark := " "
		if a.id == entry {
			mark = "*"
		}
		fmt.Fprintf(out, "  %s %-16s %-8s %s\n", mark, a.id, a.capability, a.dir)
	}
	if len(found.skipped) > 0 {
		fmt.Fprintf(out, "left out (add them by hand if they serve):%s\n", skippedList(abs, found.skipped))
	}
	if len(found.beside) > 0 {
		var names []string
		for _, a := range found.beside {
			names = append(names, fmt.Sprintf("%s (%s)", rel(abs, a.dir), a.capability))
		}
		fmt.Fprintf(out, "also found %s: not added, since the folder is itself an application; list them in \"applications\" if they run on their own\n", strings.Join(names, ", "))
	}
	fmt.Fprintf(out, "* entrypoint. Next: wattd build %s && wattd start %s\n", dir, dir)
	return nil
}

// initServerEnv are the variables the server block init writes names, with
// the values it gives them: loopback, Watt's port.
var initServerEnv = [][2]string{{"PLT_SERVER_HOSTNAME", "127.0.0.1"}, {"PLT_SERVER_PORT", "3042"}}

// addServerEnv gives the variables of initServerEnv that the .env at path
// does not set their values, at its end (the file is made when missing),
// and returns the names added. A project's own .env is otherwise left as
// it is: a server block whose placeholders it left unset would listen on
// every interface.
func addServerEnv(path string) ([]string, error) {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	// A .env wattd cannot read sets nothing here: start reports it.
	vars, _ := config.DotenvVars(string(old))
	var added []string
	var text strings.Builder
	for _, kv := range initServerEnv {
		if _, set := vars[kv[0]]; !set {
			added = append(added, kv[0])
			fmt.Fprintf(&text, "%s=%s\n", kv[0], kv[1])
		}
	}
	if len(added) == 0 {
		return nil, nil
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		old = append(old, '\n')
	}
	return added, os.WriteFile(path, append(old, text.String()...), 0o644)
}

// appID turns a folder name into an application id (a DNS label).
func appID(name string) string {
	id := strings.ToLower(name)
	if !dnsLabel.MatchString(id) {
		id = strings.Trim(notInLabel.ReplaceAllString(id, "-"), "-")
	}
	if len(id) > 63 {
		id = strings.Trim(id[:63], "-")
	}
	if id == "" {
		id = "app"
	}
	return id
}

func hasAny(dir string, names ...string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// guessEntrypoint prefers a front-end framework, then a conventional name,
// then the first application.
func guessEntrypoint(apps []foundApp) string {
	for _, want := range []string{"next", "vite"} {
		for _, a := range apps {
			if a.capability == want {
				return a.id
			}
		}
	}
	for _, n := range entryNames {
		for _, a := range apps {
			if a.id == n {
				return a.id
			}
		}
	}
	return apps[0].id
}

// discovered is what init found in a project.
type discovered struct {
	apps    []foundApp
	folder  string       // the one app folder (web/, apps/, …) they are all in, for an autoload
	skipped []skippedDir // recognised, but not applications by the look of them
	beside  []foundApp   // applications below DIR left out because DIR is one
}

// discover finds a project's applications:
//
//   - when DIR declares workspaces (npm, Yarn, pnpm), the workspace folders;
//   - else the sub-folders of web/, apps/, services/ and packages/, as an
//     autoload when they are all in one of them;
//   - else DIR itself when it is an application (path "."), telling of
//     the sub-folders that look like applications too;
//   - else DIR's sub-folders.
//
// Folders that look like libraries or test suites are left out, and said.
func discover(abs string) discovered {
	var d discovered
	if dirs, ok := workspaceFolders(abs); ok {
		for _, dir := range dirs {
			if a, why, ok := examine(dir, false); ok && why == "" {
				d.apps = append(d.apps, a)
			} else if ok {
				d.skipped = append(d.skipped, skippedDir{dir, why})
			}
		}
		d.setPaths(abs)
		return d
	}
	var folders []string
	for _, f := range appFolders {
		apps, skipped := scanApps(filepath.Join(abs, f))
		if len(apps) > 0 {
			folders = append(folders, f)
		}
		d.apps = append(d.apps, apps...)
		d.skipped = append(d.skipped, skipped...)
	}
	if len(folders) == 1 {
		d.folder = folders[0]
	}
	if len(d.apps) == 0 {
		sub, subSkipped := scanApps(abs)
		if root, why, ok := examine(abs, true); ok && why == "" {
			root.path = "."
			d.apps, d.beside = []foundApp{root}, sub
		} else {
			d.apps = sub
			d.skipped = append(d.skipped, subSkipped...)
			if len(sub) == 0 && ok {
				// Nothing else: DIR itself, though it does not look
				// like a server, rather than nothing.
				root.path = "."
				d.apps = []foundApp{root}
			}
		}
	}
	d.setPaths(abs)
	return d
}

// setPaths writes each application's path as watt.json gives it.
func (d *discovered) setPaths(abs string) {
	for i, a := range d.apps {
		switch r := rel(abs, a.dir); {
		case a.path != "":
		case r == ".":
			d.apps[i].path = "."
		default:
			d.apps[i].path = "./" + r
		}
	}
}

// rel is dir relative to abs, with forward slashes.
func rel(abs, dir string) string {
	r, err := filepath.Rel(abs, dir)
	if err != nil {
		return dir
	}
	return filepath.ToSlash(r)
}

// skippedList is the folders left out, one per line, with why.
func skippedList(abs string, skipped []skippedDir) string {
	var b strings.Builder
	for _, sk := range skipped {
		fmt.Fprintf(&b, "\n    %s: %s", rel(abs, sk.dir), sk.why)
	}
	return b.String()
}
