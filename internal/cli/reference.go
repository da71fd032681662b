package cli

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/hapod/hapod/pkg/config"
)

// FlagReference renders the flags of `hapod init` as the Markdown table the
// README carries between its flag-reference markers; a test keeps the two
// equal.
func FlagReference() string {
	var b strings.Builder
	b.WriteString("| flag | default | meaning |\n|---|---|---|\n")
	category := map[string]string{}
	for _, f := range config.Fields() {
		category[f.Name] = f.Category
	}
	for _, f := range generateFlags(true) {
		name := f.Names()[0]
		def := ""
		repeat := ""
		switch fl := f.(type) {
		case *cli.StringFlag:
			def = fl.Value
			if name == flagImage {
				// A release build's default; other builds have none.
				def = ImageRepository + ":<version>"
			}
		case *cli.BoolFlag:
			def = fmt.Sprint(fl.Value)
		case *cli.StringSliceFlag:
			repeat = " (repeatable)"
		}
		usage := f.(cli.DocGenerationFlag).GetUsage()
		if def != "" {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s`%s | %s | %s |\n", name, repeat, def, strings.ReplaceAll(usage, "|", "\\|"))
	}
	return b.String()
}
