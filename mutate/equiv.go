package mutate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"fusevm/internal/lazyre"
)

// EquivalentsFile is the usual name of the equivalence file in a series
// directory.
const EquivalentsFile = "mutants.toml"

// DefaultEquivalents returns the equivalence file of a series given as a
// directory, a series file or an mbox: mutants.toml in the directory (for
// a file, the directory holding it), or "" (no file) when there is none.
func DefaultEquivalents(series string) string {
	dir := series
	if st, err := os.Stat(series); err != nil || !st.IsDir() {
		dir = filepath.Dir(series)
	}
	p := filepath.Join(dir, EquivalentsFile)
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		return ""
	}
	return p
}

// LoadEquivalents reads an equivalence file: the mutants no scenario can
// kill, each with its reason,
//
//	[[equivalent]]
//	mutant = "fs/fuse/backing.c:195:delete-statement"
//	code = 'pr_debug("%s\n", __func__);'  # the mutant's Original, whitespace-insensitive
//	reason = "debug output only"
//
// and returns their reasons by mutant ID. Every entry is checked against
// ms, the mutants of the series: an unknown ID (a stale entry), code that
// is not the mutant's original code, an empty reason, a duplicate and an
// unknown key are errors, one line each naming path:line of the entry.
// path "" means no file; a path that does not exist is an error.
func LoadEquivalents(path string, ms []Mutant) (map[string]string, error) {
	out := map[string]string{}
	if path == "" {
		return out, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("equivalent mutants: %w", err)
	}
	var file struct {
		Equivalent []map[string]any `toml:"equivalent"`
	}
	md, err := toml.Decode(string(data), &file)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	text := strings.Split(string(data), "\n")
	var errs []error
	fail := func(line int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...)))
	}
	for _, k := range md.Undecoded() {
		fail(keyLine(text, 0, len(text), k[len(k)-1]), "unknown key %q (the file holds [[equivalent]] entries with mutant, code and reason)", k.String())
	}
	byID := map[string]*Mutant{}
	for i := range ms {
		byID[ms[i].ID] = &ms[i]
	}
	starts := entryLines(text)
	firstAt := map[string]int{}
	for i, e := range file.Equivalent {
		// The entry's lines: from its [[equivalent]] header to the next.
		from, to := 0, len(text)
		if i < len(starts) {
			from = starts[i]
			if i+1 < len(starts) {
				to = starts[i+1]
			}
		}
		at := func(key string) int { return keyLine(text, from, to, key) }
		get := func(key string) string {
			v, ok := e[key]
			if !ok {
				return ""
			}
			s, ok := v.(string)
			if !ok {
				fail(at(key), "%s must be a string", key)
			}
			return s
		}
		keys := make([]string, 0, len(e))
		for k := range e {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k != "mutant" && k != "code" && k != "reason" {
				fail(at(k), "unknown key %q in [[equivalent]] (want mutant, code and reason)", k)
			}
		}
		id, code, reason := get("mutant"), get("code"), get("reason")
		// The entry's line: its mutant key, or where the ID is written
		// when the entries are not one [[equivalent]] table each.
		entry := at("mutant")
		if len(starts) != len(file.Equivalent) {
			entry = max(findLine(text, id), 1)
		}
		if id == "" {
			fail(entry, "[[equivalent]] entry without a mutant")
			continue
		}
		if first, ok := firstAt[id]; ok {
			fail(entry, "duplicate entry for mutant %s (first at line %d)", id, first)
			continue
		}
		firstAt[id] = entry
		m := byID[id]
		if m == nil {
			fail(entry, "no mutant %s (stale entry? the series changed)", id)
			continue
		}
		switch {
		case code == "":
			fail(entry, "entry for %s has no code (want code = %q)", id, strings.TrimSpace(m.Original))
		case !sameCode(code, m.Original):
			fail(entry, "the code at %s changed: the entry says %q, the series has %q", id, strings.TrimSpace(code), strings.TrimSpace(m.Original))
		}
		if strings.TrimSpace(reason) == "" {
			fail(entry, "entry for %s has no reason", id)
			continue
		}
		out[id] = strings.TrimSpace(reason)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// sameCode compares code whitespace-insensitively.
func sameCode(a, b string) bool {
	return strings.Join(strings.Fields(a), " ") == strings.Join(strings.Fields(b), " ")
}

var entryHeaderRe = lazyre.New(`^\s*\[\[\s*equivalent\s*\]\]`)

// entryLines returns the index (0-based) of each [[equivalent]] header.
func entryLines(text []string) []int {
	var out []int
	for i, l := range text {
		if entryHeaderRe().MatchString(l) {
			out = append(out, i)
		}
	}
	return out
}

// keyLine returns the 1-based number of the line in text[from:to] that sets
// key, or of the first line of the range.
func keyLine(text []string, from, to int, key string) int {
	re := regexp.MustCompile(`^\s*("?)` + regexp.QuoteMeta(key) + `("?)\s*=`)
	for i := from; i < to && i < len(text); i++ {
		if re.MatchString(text[i]) {
			return i + 1
		}
	}
	return from + 1
}

// findLine returns the 1-based number of the first line holding s, or 0.
func findLine(text []string, s string) int {
	for i, l := range text {
		if strings.Contains(l, s) {
			return i + 1
		}
	}
	return 0
}
