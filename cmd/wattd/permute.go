package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// permute moves the options that follow a command's positional arguments
// in front of them, as GNU getopt does, so that `wattd ctl metrics web
// --json` and `wattd start DIR -c FILE` mean what they say: urfave/cli
// stops reading options at a command's first argument. It finds the
// command the arguments name (descending through subcommands, stepping
// over the options of each level) and reorders only that command's
// arguments, using its flags to know which options take a value. A
// command that parses its own arguments (SkipFlagParsing) is left alone,
// and so are everything after "--" and a completion request.
func permute(cmds []*cli.Command, args []string) ([]string, error) {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		// urfave/cli's completion wants its flag last, and the words
		// before it as typed.
		return args, nil
	}
	if (args[1] == "help" || args[1] == "h") && len(args) > 3 {
		// `wattd help ctl metrics`: urfave/cli's help command looks one
		// level down only, and would show ctl's help.
		return append(append([]string{args[0]}, args[2:]...), "--help"), nil
	}
	var flags []cli.Flag
	i := 1
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			if a == "--" {
				return args, nil
			}
			n, _ := optionWidth(flags, args[i:])
			i += n
			continue
		}
		c := commandNamed(cmds, a)
		if c == nil {
			return args, nil // not a command: a positional of the app itself
		}
		if c.SkipFlagParsing {
			return args, nil
		}
		i++
		if len(c.Subcommands) > 0 {
			cmds, flags = c.Subcommands, c.Flags
			continue
		}
		rest, err := reorder(c.Flags, args[i:])
		if err != nil {
			return nil, err
		}
		return append(slices.Clone(args[:i]), rest...), nil
	}
	return args, nil
}

// reorder puts rest's options, with their values, before its positional
// arguments, keeping the order within each. An option that takes a value
// and comes last, without one, is an error: moved in front, it would take
// the argument before it as its value (`ctl metrics web --name`). With
// -h or --help the arguments go: urfave/cli would read the first as a
// help topic.
func reorder(flags []cli.Flag, rest []string) ([]string, error) {
	var opts, pos []string
	help := false
	for i := 0; i < len(rest); {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			i++
			continue
		}
		n, missing := optionWidth(flags, rest[i:])
		if missing {
			return nil, fmt.Errorf("%s needs a value", a)
		}
		help = help || slices.Contains([]string{"-h", "--help", "-help"}, a)
		opts = append(opts, rest[i:i+n]...)
		i += n
	}
	if help {
		return opts, nil
	}
	return append(opts, pos...), nil
}

// optionWidth is how many arguments the option at args[0] spans: two for
// a flag that takes a value given as the next argument, one otherwise
// (a boolean, a value after "=", or an unknown option, which urfave/cli
// then reports). missing is true for a flag that takes a value and is
// the last argument.
func optionWidth(flags []cli.Flag, args []string) (n int, missing bool) {
	name, _, inline := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
	if inline {
		return 1, false
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if v, ok := f.(cli.DocGenerationFlag); ok && v.TakesValue() {
			if len(args) < 2 {
				return 1, true
			}
			return 2, false
		}
		return 1, false
	}
	return 1, false
}

// commandNamed returns the command of cmds called name (or one of its
// aliases), or nil.
func commandNamed(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name || slices.Contains(c.Aliases, name) {
			return c
		}
	}
	return nil
}
