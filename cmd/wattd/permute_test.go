package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestPermute(t *testing.T) {
	cmds := []*cli.Command{
		{Name: "start", Flags: []cli.Flag{&cli.StringFlag{Name: "config", Aliases: []string{"c"}}, &cli.BoolFlag{Name: "json"}}},
		{Name: "logs", SkipFlagParsing: true},
		{Name: "ctl", Flags: []cli.Flag{&cli.StringFlag{Name: "socket"}}, Subcommands: []*cli.Command{
			{Name: "scale", Aliases: []string{"sc"}, Flags: []cli.Flag{&cli.StringFlag{Name: "socket"}, &cli.BoolFlag{Name: "json"}}},
		}},
	}
	for _, c := range []struct{ in, want string }{
		{"wattd start DIR -c FILE", "wattd start -c FILE DIR"},
		{"wattd start DIR --config=FILE --json", "wattd start --config=FILE --json DIR"},
		{"wattd start -c FILE DIR", "wattd start -c FILE DIR"},
		{"wattd start DIR --json X", "wattd start --json DIR X"},
		{"wattd start DIR -- -c FILE", "wattd start DIR -- -c FILE"},
		{"wattd start DIR -", "wattd start DIR -"},
		{"wattd ctl --socket S scale web 2 --json", "wattd ctl --socket S scale --json web 2"},
		{"wattd ctl sc web --socket S 2", "wattd ctl sc --socket S web 2"},
		{"wattd ctl scale web --bogus 2", "wattd ctl scale --bogus web 2"},
		{"wattd logs web -n 5", "wattd logs web -n 5"},
		{"wattd nothing -x y", "wattd nothing -x y"},
		{"wattd start - --generate-bash-completion", "wattd start - --generate-bash-completion"},
		{"wattd", "wattd"},
		{"wattd start DIR --help", "wattd start --help"},
		{"wattd ctl scale web 2 -h", "wattd ctl scale -h"},
		{"wattd start DIR -c", "error: -c needs a value"},
		{"wattd ctl sc web --socket", "error: --socket needs a value"},
		{"wattd start DIR --config= ", "wattd start --config= DIR"},
		{"wattd help ctl scale", "wattd ctl scale --help"},
		{"wattd help start", "wattd help start"},
	} {
		args, err := permute(cmds, strings.Fields(c.in))
		got := strings.Join(args, " ")
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != c.want {
			t.Errorf("permute(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	in := []string{"wattd", "start", "DIR", "-c", "F"}
	orig := slices.Clone(in)
	_, _ = permute(cmds, in)
	if !slices.Equal(in, orig) {
		t.Errorf("permute changed its argument: %q", in)
	}
}
