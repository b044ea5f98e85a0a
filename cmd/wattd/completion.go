package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/wattd/wattd/supervisor/admin"
	"github.com/wattd/wattd/supervisor/rundir"
)

// The completion scripts ask wattd itself what may come next: urfave/cli
// answers the hidden --generate-bash-completion flag with the
// subcommands, or with the flags when the word being completed starts
// with "-". So they never go stale, and `ctl restart <TAB>` can list the
// running runtime's applications. A bare "--" is passed on as "-": after
// "--" the flag that asks for completions would be an argument.
const bashCompletion = `# bash completion for wattd: source <(wattd completion bash)
_wattd_complete() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local -a before=("${COMP_WORDS[@]:0:COMP_CWORD}")
	local candidates
	if [[ $cur == -* ]]; then
		candidates=$("${before[@]}" "${cur/#--/-}" --generate-bash-completion 2>/dev/null)
	else
		candidates=$("${before[@]}" --generate-bash-completion 2>/dev/null)
	fi
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$candidates" -- "$cur"))
}
complete -o default -F _wattd_complete wattd
`

const zshCompletion = `#compdef wattd
# zsh completion for wattd: source <(wattd completion zsh), after compinit
_wattd_complete() {
	local cur=${words[CURRENT]}
	local -a candidates
	if [[ $cur == -* ]]; then
		candidates=("${(@f)$("${(@)words[1,CURRENT-1]}" "${cur/#--/-}" --generate-bash-completion 2>/dev/null)}")
	else
		candidates=("${(@f)$("${(@)words[1,CURRENT-1]}" --generate-bash-completion 2>/dev/null)}")
	fi
	candidates=(${candidates:#})
	if (( ${#candidates} )); then
		compadd -a candidates
	else
		_files
	fi
}
compdef _wattd_complete wattd
`

const fishCompletion = `# fish completion for wattd: wattd completion fish | source
function __wattd_complete
	set -l before (commandline -opc)
	set -l cur (commandline -ct)
	if string match -q -- '-*' $cur
		$before (string replace -r -- '^--' '-' $cur) --generate-bash-completion 2>/dev/null
	else
		$before --generate-bash-completion 2>/dev/null
	end
end
complete -c wattd -a '(__wattd_complete)'
`

var completionScripts = map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for SHELL (bash, zsh or fish)",
		ArgsUsage: "SHELL",
		Description: "bash:  source <(wattd completion bash)     (or save it as /usr/share/bash-completion/completions/wattd)\n" +
			"zsh:   source <(wattd completion zsh)      (after compinit; or save it as _wattd in your $fpath)\n" +
			"fish:  wattd completion fish | source     (or save it as ~/.config/fish/completions/wattd.fish)",
		BashComplete: func(c *cli.Context) {
			for _, sh := range []string{"bash", "zsh", "fish"} {
				fmt.Fprintln(stdout, sh)
			}
		},
		Action: func(c *cli.Context) error {
			script, ok := completionScripts[c.Args().First()]
			if c.NArg() != 1 || !ok {
				return usageErrorf("usage: wattd completion bash|zsh|fish")
			}
			_, err := fmt.Fprint(stdout, script)
			return err
		},
	}
}

// completeApps lists the applications of the runtime that `wattd ctl`
// would address, for the commands that take APP. It prints nothing when
// no runtime answers at once, and nothing once APP is given.
func completeApps(c *cli.Context) {
	if n := len(os.Args); n > 2 && strings.HasPrefix(os.Args[n-2], "-") {
		// An option being typed (the script passes "--js" as "-js"):
		// the command's options, as every other command completes them.
		cli.DefaultCompleteWithFlags(c.Command)(c)
		return
	}
	if c.NArg() > 0 {
		return
	}
	cwd, err := os.Getwd()
	if err != nil {
		return
	}
	if abs, err := filepath.Abs(cwd); err == nil {
		cwd = abs
	}
	sock, err := rundir.Find(rundir.FindOptions{Socket: ctlString(c, "socket"), Name: ctlString(c, "name"), Cwd: cwd})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	apps, err := admin.NewClient(sock).Apps(ctx)
	if err != nil {
		return
	}
	for _, a := range apps {
		fmt.Fprintln(stdout, a.ID)
	}
}
