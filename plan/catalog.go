package plan

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"fusevm/kernel"
	"fusevm/scenarios"
	"fusevm/verdict"
)

// knownVerdicts are the verdicts a known issue may expect: what a kernel
// can do wrong. PASS is no issue; SKIP and INFRA say nothing of the kernel.
var knownVerdicts = []verdict.Verdict{verdict.Fail, verdict.Crash, verdict.Hang, verdict.Flaky}

// Catalog is a series.toml (kernel.Catalog) whose known issues were
// checked.
type Catalog struct {
	*kernel.Catalog
	// known holds the checked known issues of each version.
	known map[string][]knownIssue
}

// knownIssue is a checked [[version.known_issue]].
type knownIssue struct {
	scenario string
	config   string // normalized
	patches  []int  // sorted; nil for all the patches of the version
	verdict  verdict.Verdict
	reason   string
}

// LoadCatalog reads a series.toml and checks its known issues: each names
// a built-in scenario, a verdict a kernel can be wrong with (FAIL, CRASH,
// HANG or FLAKY), a config set whose fragments exist under root, patches
// every base of the version has, and a reason; no two name the same cell.
// Errors name file:line.
func LoadCatalog(path, root string) (*Catalog, error) {
	cat, err := kernel.LoadCatalog(path)
	if err != nil {
		return nil, err
	}
	f, _, err := openFile(path)
	if err != nil {
		return nil, err
	}
	builtin := scenarios.Names()
	c := &Catalog{Catalog: cat, known: map[string][]knownIssue{}}
	n := 0
	for _, v := range cat.Versions {
		seen := map[string]int{}
		for _, ki := range v.KnownIssues {
			line := f.table("version.known_issue", n)
			n++
			bad := func(key, format string, a ...any) error {
				return f.errorf(f.assignment(line, key), "known issue of %s: %s", v.Name, fmt.Sprintf(format, a...))
			}
			k := knownIssue{scenario: ki.Scenario, config: normalizeConfig(ki.Config), verdict: verdict.Verdict(ki.Verdict), reason: ki.Reason}
			switch {
			case !slices.Contains(builtin, ki.Scenario):
				return nil, bad("scenario", "unknown scenario %q (built-in: %s)", ki.Scenario, strings.Join(builtin, ", "))
			case !slices.Contains(knownVerdicts, k.verdict):
				return nil, bad("verdict", "verdict %q: want FAIL, CRASH, HANG or FLAKY", ki.Verdict)
			case k.config == "":
				return nil, bad("config", "needs config, the config set it shows under (e.g. \"base+debug\")")
			case strings.TrimSpace(ki.Reason) == "":
				return nil, bad("reason", "needs a reason")
			}
			if _, err := fragments(root, k.config); err != nil {
				return nil, bad("config", "%v", err)
			}
			if ki.Patches != nil {
				if k.patches, err = c.checkPatches(v.Name, ki.Patches); err != nil {
					return nil, bad("patches", "%v", err)
				}
			}
			for _, e := range c.Entries {
				if e.Version != v.Name {
					continue
				}
				cell := fmt.Sprint(e.Base, k.scenario, k.config, patchSet(k.patches, len(e.Patches)))
				if prev, dup := seen[cell]; dup {
					return nil, bad("scenario", "the same scenario, config and patches as the known issue at line %d", prev)
				}
				seen[cell] = line
			}
			c.known[v.Name] = append(c.known[v.Name], k)
		}
	}
	return c, nil
}

// checkPatches checks a known issue's patch numbers against every base of
// the version and returns them sorted.
func (c *Catalog) checkPatches(version string, patches []int) ([]int, error) {
	if len(patches) == 0 {
		return nil, errors.New("patches = [] selects no patch (leave it out for all of them)")
	}
	out := slices.Sorted(slices.Values(patches))
	if len(slices.Compact(slices.Clone(out))) != len(out) {
		return nil, fmt.Errorf("patches %v names a patch twice", patches)
	}
	for _, e := range c.Entries {
		if e.Version != version {
			continue
		}
		if out[0] < 1 || out[len(out)-1] > len(e.Patches) {
			return nil, fmt.Errorf("patches %v: %s on base %s has patches 1 to %d", patches, version, e.Base, len(e.Patches))
		}
	}
	return out, nil
}

// knownIssues returns, by scenario, the known issues of entry's version
// that apply under config (normalized) with exactly the patches picks (nil:
// all of them) applied.
func (c *Catalog) knownIssues(e *kernel.CatalogEntry, config string, picks []int) map[string]knownIssue {
	applied := patchSet(picks, len(e.Patches))
	out := map[string]knownIssue{}
	for _, k := range c.known[e.Version] {
		if k.config == config && slices.Equal(patchSet(k.patches, len(e.Patches)), applied) {
			out[k.scenario] = k
		}
	}
	return out
}

// patchSet is a patch selection as a sorted set; nil stands for all n.
func patchSet(picks []int, n int) []int {
	if picks == nil {
		for i := 1; i <= n; i++ {
			picks = append(picks, i)
		}
		return picks
	}
	return slices.Compact(slices.Sorted(slices.Values(picks)))
}
