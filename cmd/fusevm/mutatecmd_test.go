package main

import (
	"os"
	"path/filepath"
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
