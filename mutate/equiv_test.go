package mutate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), EquivalentsFile)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadEquivalents(t *testing.T) {
	_, ms := loadMutants(t, "v2")
	good := `# Mutants that no scenario can kill, each with its reason.
[[equivalent]]
mutant = "fs/fuse/backing.c:195:delete-statement"
code = 'pr_debug("%s\n",   __func__);'      # spacing does not matter
reason = "debug output only"
`
	eq, err := LoadEquivalents(writeFile(t, good), ms)
	if err != nil || len(eq) != 1 || eq["fs/fuse/backing.c:195:delete-statement"] != "debug output only" {
		t.Fatalf("LoadEquivalents = %v, %v", eq, err)
	}
	if eq, err := LoadEquivalents("", ms); err != nil || len(eq) != 0 {
		t.Fatalf("no file: %v, %v", eq, err)
	}
	if _, err := LoadEquivalents(filepath.Join(t.TempDir(), "missing.toml"), ms); err == nil {
		t.Fatal("a missing file given by path is no error")
	}
	entry := func(id, code, reason string) string {
		return "[[equivalent]]\nmutant = \"" + id + "\"\ncode = '" + code + "'\nreason = \"" + reason + "\"\n"
	}
	const pr = "fs/fuse/backing.c:195:delete-statement"
	const prCode = `pr_debug("%s\n", __func__);`
	bad := []struct {
		name, text string
		want       []string // substrings of the error, after "<path>:"
	}{
		{"stale", "# c\n" + entry("fs/fuse/backing.c:999:delete-statement", "x();", "r"),
			[]string{`3: no mutant fs/fuse/backing.c:999:delete-statement (stale entry? the series changed)`}},
		{"code changed", entry(pr, "pr_info(1);", "r"),
			[]string{`2: the code at ` + pr + ` changed`}},
		{"no code", entry(pr, "", "r"),
			[]string{`2: entry for ` + pr + ` has no code`}},
		{"empty reason", entry(pr, prCode, "  "),
			[]string{`2: entry for ` + pr + ` has no reason`}},
		{"duplicate", entry(pr, prCode, "r") + "\n" + entry(pr, prCode, "r"),
			[]string{`7: duplicate entry for mutant ` + pr + ` (first at line 2)`}},
		{"unknown key", entry(pr, prCode, "r") + "reson = \"x\"\n",
			[]string{`5: unknown key "reson"`}},
		{"unknown top-level key", "title = \"x\"\n" + entry(pr, prCode, "r"),
			[]string{`1: unknown key "title"`}},
		{"several", entry("a:1:swap-eq", "x", "r") + entry(pr, prCode, ""),
			[]string{`2: no mutant a:1:swap-eq`, `6: entry for ` + pr + ` has no reason`}},
		{"syntax", "[[equivalent]\n", []string{""}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, c.text)
			eq, err := LoadEquivalents(p, ms)
			if err == nil {
				t.Fatalf("no error, got %v", eq)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(c.want) {
				t.Errorf("error %q: want %d line(s)", err, len(c.want))
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), p+":"+w) {
					t.Errorf("error %q does not contain %q", err, p+":"+w)
				}
			}
		})
	}
}

func TestDefaultEquivalents(t *testing.T) {
	dir := t.TempDir()
	if got := DefaultEquivalents(dir); got != "" {
		t.Errorf("no file: %q", got)
	}
	p := filepath.Join(dir, EquivalentsFile)
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, series := range []string{dir, filepath.Join(dir, "series"), filepath.Join(dir, "v2.mbox")} {
		if got := DefaultEquivalents(series); got != p {
			t.Errorf("DefaultEquivalents(%s) = %q, want %q", series, got, p)
		}
	}
}
