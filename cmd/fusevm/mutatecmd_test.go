package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const v2Series = "../../patches/fuse-passthrough-recovery/7.3/v2"

// TestMutateList lists the mutants of the shipped v2 without building:
// numbered among all, filtered by operator and number, each with its ID.
func TestMutateList(t *testing.T) {
	cache := t.TempDir()
	code, all, stderr := fusevm(t, "mutate", "--series", v2Series, "--list", "--cache", cache)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(all), "\n")
	if len(lines) < 10 || !strings.HasPrefix(lines[0], "m01 fs/fuse/") {
		t.Fatalf("list:\n%s", all)
	}
	code, some, _ := fusevm(t, "mutate", "--series", v2Series, "--list", "--cache", cache, "--operators", "drop-capable")
	if code != exitOK || strings.Count(some, "\n") != 1 || !strings.Contains(some, ":drop-capable: ") || !strings.Contains(all, some) {
		t.Errorf("--operators drop-capable: exit %d\n%s", code, some)
	}
	id := strings.Fields(lines[2])[1]
	id = strings.TrimSuffix(id, ":")
	code, one, _ := fusevm(t, "mutate", "--series", v2Series, "--list", "--cache", cache, "--only", id)
	if code != exitOK || strings.TrimSpace(one) != lines[2] {
		t.Errorf("--only %s: exit %d, %q, want %q", id, code, one, lines[2])
	}
	code, one, _ = fusevm(t, "mutate", "--series", v2Series, "--list", "--cache", cache, "--only", "3")
	if code != exitOK || strings.TrimSpace(one) != lines[2] {
		t.Errorf("--only 3: exit %d, %q, want %q", code, one, lines[2])
	}
}

func TestMutateUsageErrors(t *testing.T) {
	cache := t.TempDir()
	stale := filepath.Join(t.TempDir(), "mutants.toml")
	os.WriteFile(stale, []byte("[[equivalent]]\nmutant = \"fs/fuse/backing.c:1:delete-statement\"\ncode = \"x;\"\nreason = \"r\"\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"mutate"}, "--series is required"},
		{[]string{"mutate", "--series", v2Series, "--operators", "flip"}, `unknown operator "flip"`},
		{[]string{"mutate", "--series", v2Series, "--only", "m999"}, "--only m999: no such mutant"},
		{[]string{"mutate", "--series", v2Series, "--only", "nosuch.c:1:x"}, "no such mutant"},
		{[]string{"mutate", "--series", v2Series, "--equivalent", stale}, "fs/fuse/backing.c:1:delete-statement"},
		{[]string{"mutate", "--series", v2Series, "--equivalent", "/nonexistent/mutants.toml"}, "/nonexistent/mutants.toml"},
		{[]string{"mutate", "--series", v2Series, "-j", "0"}, "-j must be >= 1"},
		{[]string{"mutate", "--kernel-image", "/boot/vmlinuz", "--series", v2Series}, "prebuilt kernel"},
	} {
		code, _, stderr := fusevm(t, append(c.args, "--cache", cache, "--list")...)
		if code != exitUsage || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 2 {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, stderr, c.want)
		}
	}
}

// TestEndToEndMutate runs the mutation analysis of the shipped v2 on the
// default kernel for two mutants and two scenarios: the dropped
// capability check is killed by close-all-permissions, the deleted
// pr_debug survives and is explained by the series' mutants.toml, so the
// analysis exits 0; without the equivalence file the survivor makes it 1.
func TestEndToEndMutate(t *testing.T) {
	needVM(t)
	out := t.TempDir()
	args := []string{"mutate", "--series", v2Series, "--only", "fs/fuse/backing.c:198:drop-capable,fs/fuse/backing.c:195:delete-statement",
		"--scenarios", "close-all-permissions,smoke-passthrough", "-j", "2"}
	code, stdout, stderr := fusevm(t, append(args, "--out", out)...)
	if code != exitOK {
		t.Fatalf("mutate: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	var m struct {
		Outcomes []struct {
			Mutant  struct{ ID string }
			State   string
			Killers []string
		}
	}
	data, err := os.ReadFile(filepath.Join(out, "mutation.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range m.Outcomes {
		got[o.Mutant.ID] = o.State + " " + strings.Join(o.Killers, ",")
	}
	want := map[string]string{
		"fs/fuse/backing.c:198:drop-capable":     "killed close-all-permissions",
		"fs/fuse/backing.c:195:delete-statement": "equivalent ",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	for _, f := range []string{"control/results.json", "results.json", "junit.xml", "summary.md", "mutants/" + "mutant-fs-fuse-backing.c-198-drop-capable.patch"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	empty := filepath.Join(t.TempDir(), "none.toml")
	os.WriteFile(empty, nil, 0o644)
	code, stdout, _ = fusevm(t, append(args, "--equivalent", empty, "--out", t.TempDir())...)
	if code != exitFail || !strings.Contains(stdout, "SURVIVED fs/fuse/backing.c:195:delete-statement") {
		t.Errorf("without the equivalence file: exit %d, want 1 and the survivor\n%s", code, stdout)
	}
}
