package cli

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// Completion scripts call `hapod ... --generate-bash-completion`, which
// urfave/cli answers with the subcommands and flags valid at that point.
const bashCompletion = `# hapod bash completion: source <(hapod completion bash)
_hapod_complete() {
	local words=("${COMP_WORDS[@]:0:COMP_CWORD}")
	local cur="${COMP_WORDS[COMP_CWORD]}"
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$("${words[@]}" ${cur:+"$cur"} --generate-bash-completion 2>/dev/null)" -- "$cur"))
}
complete -o default -F _hapod_complete hapod
`

const zshCompletion = `#compdef hapod
# hapod zsh completion: source <(hapod completion zsh)
_hapod() {
	local -a opts
	opts=("${(@f)$(${words[@]:0:#words[@]-1} ${words[-1]:+${words[-1]}} --generate-bash-completion 2>/dev/null)}")
	_describe 'hapod' opts
}
compdef _hapod hapod
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script (bash or zsh)",
		ArgsUsage: "bash|zsh",
		Description: `Examples:
   source <(hapod completion bash)
   hapod completion zsh > "${fpath[1]}/_hapod"`,
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "bash":
				fmt.Fprint(c.App.Writer, bashCompletion)
			case "zsh":
				fmt.Fprint(c.App.Writer, zshCompletion)
			default:
				return fmt.Errorf("completion: name a shell: bash or zsh")
			}
			return nil
		},
	}
}
