package main

import (
	"flag"
	"fmt"

	"fusevm/scenarios"
)

// cmdScenarios lists the built-in scenarios, or parses the given scripts
// and reports the first error (for script authors).
func cmdScenarios(args []string) (int, error) {
	fs := flag.NewFlagSet("scenarios", flag.ContinueOnError)
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	names := fs.Args()
	if len(names) == 0 {
		names = []string{"all"}
	}
	ss, err := scenarios.Load(names)
	if err != nil {
		return exitUsage, usageError{err}
	}
	for _, s := range ss {
		needs := "-"
		if len(s.Needs) > 0 {
			needs = fmt.Sprint(s.Needs)
		}
		fmt.Printf("%-28s needs %-30s %s\n", s.Name, needs, s.Description)
	}
	return exitOK, nil
}
