package mutate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"fusevm/kernel"
)

// hunkText makes one hunk; each line starts with ' ', '+' or '-'.
func hunkText(oldStart, newStart int, body string) string {
	lines := strings.Split(strings.TrimPrefix(body, "\n"), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	o, n := 0, 0
	for _, l := range lines {
		switch l[0] {
		case ' ':
			o++
			n++
		case '-':
			o++
		case '+':
			n++
		}
	}
	return fmt.Sprintf("@@ -%d,%d +%d,%d @@\n%s\n", oldStart, o, newStart, n, strings.Join(lines, "\n"))
}

// fileText makes one file's part of a git diff.
func fileText(path string, hunks ...string) string {
	return fmt.Sprintf("diff --git a/%s b/%s\nindex 1111111..2222222 100644\n--- a/%s\n+++ b/%s\n%s", path, path, path, path, strings.Join(hunks, ""))
}

// mailText makes a format-patch mail of file diffs.
func mailText(subject string, files ...string) string {
	return "From: Test <test@example.invalid>\nSubject: [PATCH] " + subject + "\n\nSome text.\n\nSigned-off-by: Test <test@example.invalid>\n---\n" +
		strings.Join(files, "") + "-- \n2.39.5\n\n"
}

// seriesOf makes a series of patch texts.
func seriesOf(t *testing.T, patches ...string) *kernel.Series {
	t.Helper()
	s := &kernel.Series{Source: "test"}
	for i, text := range patches {
		p, err := kernel.ParsePatch(fmt.Sprintf("%04d-test.patch", i+1), []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		s.Patches = append(s.Patches, *p)
	}
	return s
}

// gitRepo is a scratch repository for applying patches.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git(nil, "init", "-q")
	return r
}

func (r *gitRepo) git(stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *gitRepo) mustGit(stdin []byte, args ...string) {
	r.t.Helper()
	if out, err := r.git(stdin, args...); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (r *gitRepo) write(path string, data []byte) {
	r.t.Helper()
	full := filepath.Join(r.dir, path)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *gitRepo) read(path string) []byte {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, path))
	if err != nil {
		r.t.Fatal(err)
	}
	return data
}

// baseFiles makes, for each file the series touches, a base version on
// which it applies: distinct filler lines, with the old side of each hunk
// (context and removed lines) of the first patch that touches the file at
// its line numbers. Files the series creates are left out.
func baseFiles(t *testing.T, s *kernel.Series) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	done := map[string]bool{}
	for _, p := range s.Patches {
		fds, err := parseDiff(string(p.Data))
		if err != nil {
			t.Fatal(err)
		}
		for _, fd := range fds {
			if fd.oldPath == "" || done[fd.oldPath] {
				continue
			}
			done[fd.oldPath] = true
			known := map[int]string{}
			last := 0
			for _, h := range fd.hunks {
				n := h.oldStart
				for _, l := range h.lines {
					if l.kind != '+' {
						known[n] = l.text
						n++
					}
				}
				last = max(last, n-1)
			}
			var lines []string
			for i := 1; i <= last+5; i++ {
				if text, ok := known[i]; ok {
					lines = append(lines, text)
				} else {
					lines = append(lines, fmt.Sprintf("/* filler %s %d */", fd.oldPath, i))
				}
			}
			out[fd.oldPath] = lines
		}
	}
	return out
}

// applySeries writes base files into a fresh repository, applies the
// series with git apply and commits it.
func applySeries(t *testing.T, s *kernel.Series, base map[string][]string) *gitRepo {
	t.Helper()
	r := newGitRepo(t)
	paths := make([]string, 0, len(base))
	for p := range base {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		r.write(p, []byte(strings.Join(base[p], "\n")+"\n"))
	}
	r.mustGit(nil, "add", "-A")
	r.mustGit(nil, "commit", "-q", "--allow-empty", "-m", "base")
	for _, p := range s.Patches {
		r.mustGit(p.Data, "apply", "--index", "-")
	}
	r.mustGit(nil, "commit", "-q", "--allow-empty", "-m", "series")
	return r
}

// checkMutantsApply applies every mutant on top of the series in r: it
// must apply, change its file, and its first changed line must be at
// wantLine(m) (0: not checked).
func checkMutantsApply(t *testing.T, r *gitRepo, ms []Mutant, wantLine func(Mutant) int) {
	t.Helper()
	for _, m := range ms {
		if out, err := r.git(m.Diff.Data, "apply", "--check", "-"); err != nil {
			t.Errorf("mutant %s does not apply: %v\n%s\n%s", m.ID, err, out, m.Diff.Data)
			continue
		}
		before := r.read(m.File)
		r.mustGit(m.Diff.Data, "apply", "-")
		after := r.read(m.File)
		r.write(m.File, before)
		if bytes.Equal(before, after) {
			t.Errorf("mutant %s leaves %s as it was", m.ID, m.File)
			continue
		}
		if want := wantLine(m); want > 0 {
			b, a := strings.Split(string(before), "\n"), strings.Split(string(after), "\n")
			first := 0
			for i := 0; i < len(b) && i < len(a); i++ {
				if b[i] != a[i] {
					first = i + 1
					break
				}
			}
			if first != want {
				t.Errorf("mutant %s changes %s first at line %d, want %d\n%s", m.ID, m.File, first, want, m.Diff.Data)
			}
			if got := b[want-1]; got != strings.Split(m.Original, "\n")[0] {
				t.Errorf("mutant %s: line %d of the series' %s is %q, its Original starts with %q", m.ID, want, m.File, got, m.Original)
			}
		}
	}
}
