// Package scenarios holds the scenario scripts (the *.fvm files in this
// directory, embedded in the host binary) and decides what each should
// give on a kernel, from the behaviours its patch series claims.
//
// A script describes correct behaviour. A scenario whose "needs" are all
// claimed by the kernel under test is expected to PASS; otherwise it is a
// reproducer there and is expected to FAIL (a reproducer that passes on a
// kernel lacking the fix proves nothing, and is reported as unexpected).
package scenarios

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"fusevm/scenarios/script"
	"fusevm/verdict"
)

//go:embed *.fvm
var builtin embed.FS

// Scenario is a parsed script and its text (sent to the guest).
type Scenario struct {
	*script.Script
	Text string
}

// Names lists the built-in scenarios in name order.
func Names() []string {
	entries, _ := builtin.ReadDir(".")
	var names []string
	for _, e := range entries {
		names = append(names, strings.TrimSuffix(e.Name(), ".fvm"))
	}
	sort.Strings(names)
	return names
}

// Load parses the named scenarios. A name is a built-in scenario, "all",
// or a path to a .fvm file. Every script is parsed here, on the host, so a
// malformed one fails before any boot.
func Load(names []string) ([]Scenario, error) {
	var out []Scenario
	seen := map[string]bool{}
	for _, n := range names {
		if n == "all" {
			more, err := Load(Names())
			if err != nil {
				return nil, err
			}
			for _, s := range more {
				if !seen[s.Name] {
					seen[s.Name] = true
					out = append(out, s)
				}
			}
			continue
		}
		var text []byte
		var err error
		file := n
		name := n
		if strings.HasSuffix(n, ".fvm") {
			text, err = os.ReadFile(n)
			name = strings.TrimSuffix(filepath.Base(n), ".fvm")
		} else {
			file = "scenarios/" + n + ".fvm"
			text, err = builtin.ReadFile(n + ".fvm")
			if err != nil {
				return nil, fmt.Errorf("unknown scenario %q (built-in: %s)", n, strings.Join(Names(), ", "))
			}
		}
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", n, err)
		}
		s, err := script.Parse(name, file, string(text))
		if err != nil {
			return nil, err
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, Scenario{Script: s, Text: string(text)})
		}
	}
	return out, nil
}

// Expected is the verdict a scenario should give on a kernel claiming
// claims: PASS when every need is claimed, FAIL otherwise.
func Expected(s *script.Script, claims map[string]bool) verdict.Verdict {
	for _, n := range s.Needs {
		if !claims[n] {
			return verdict.Fail
		}
	}
	return verdict.Pass
}
