package main

import (
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
func permute(cmds []*cli.Command, args []string) []string {
	if len(args) < 2 || args[len(args)-1] == "--generate-bash-completion" {
		// urfave/cli's completion wants its flag last, and the words
		// before it as typed.
		return args
	}
	var flags []cli.Flag
	i := 1
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			if a == "--" {
				return args
			}
			i += optionWidth(flags, args[i:])
			continue
		}
		c := commandNamed(cmds, a)
		if c == nil {
			return args // not a command: a positional of the app itself
		}
		if c.SkipFlagParsing {
			return args
		}
		i++
		if len(c.Subcommands) > 0 {
			cmds, flags = c.Subcommands, c.Flags
			continue
		}
		return append(slices.Clone(args[:i]), reorder(c.Flags, args[i:])...)
	}
	return args
}

// reorder puts rest's options, with their values, before its positional
// arguments, keeping the order within each.
func reorder(flags []cli.Flag, rest []string) []string {
	var opts, pos []string
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
		n := optionWidth(flags, rest[i:])
		opts = append(opts, rest[i:i+n]...)
		i += n
	}
	return append(opts, pos...)
}

// optionWidth is how many arguments the option at args[0] spans: two for
// a flag that takes a value given as the next argument, one otherwise
// (a boolean, a value after "=", or an unknown option, which urfave/cli
// then reports).
func optionWidth(flags []cli.Flag, args []string) int {
	name, _, inline := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
	if inline || len(args) < 2 {
		return 1
	}
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		if v, ok := f.(cli.DocGenerationFlag); ok && v.TakesValue() {
			return 2
		}
		return 1
	}
	return 1
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
