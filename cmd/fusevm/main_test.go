package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"fusevm/initramfs"
)

var fusevmBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fusevm-cli-")
	if err != nil {
		panic(err)
	}
	fusevmBin = filepath.Join(dir, "fusevm")
	build := exec.Command("go", "build", "-o", fusevmBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: it is also the guest's /init
	if out, err := build.CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fusevm runs the CLI and returns its exit code, stdout and stderr.
func fusevm(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return called(t, "fusevm", "", args...)
}

func TestUsageErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.fvm")
	os.WriteFile(bad, []byte("backing 16M\nopen h\n"), 0o644)
	cache := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"run", "--kernel", "nosuch:1", "--cache", cache, "--out", t.TempDir()}, `unknown provider "nosuch"`},
		{[]string{"run", "--kernel", "debian:seven", "--cache", cache, "--out", t.TempDir()}, "want debian:X.Y"},
		{[]string{"run", "--scenarios", "no-such-scenario", "--cache", cache}, `unknown scenario "no-such-scenario"`},
		{[]string{"run", "--scenarios", bad, "--cache", cache}, "bad.fvm:2: open: want 2 operand(s), got 1"},
		{[]string{"run", "--config", "nosuch", "--kernel", "tarball:/nonexistent.tar.xz", "--cache", cache, "--out", t.TempDir()}, `config fragment "nosuch"`},
		{[]string{"run", "--bogus-flag"}, "flag provided but not defined"},
		{[]string{"run", "--accel", "bogus"}, `invalid value "bogus" for flag -accel: vmtest: unknown accelerator "bogus"`},
	}
	for _, c := range cases {
		code, _, stderr := fusevm(t, c.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, exitUsage, stderr)
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("%v: stderr %q lacks %q", c.args, stderr, c.want)
		}
	}
}

func TestBadSourceIsOneLineNonZero(t *testing.T) {
	cache := t.TempDir()
	junk := filepath.Join(t.TempDir(), "linux.tar.xz")
	os.WriteFile(junk, []byte("not a tarball"), 0o644)
	cases := []struct {
		spec, want string
	}{
		{"tarball:" + junk, "is corrupt or not a kernel tarball"},
		{"tarball:/nonexistent/linux.tar.xz", "no such file"},
		{"tarball:https://example.invalid/linux.tar.xz", "a URL needs its digest"},
		{"tarball:" + junk + "#sha256=" + strings.Repeat("0", 64), "sha256 mismatch"},
		{"git:" + t.TempDir() + "@v1.0", "is not a git repository"},
		{"dir:" + t.TempDir(), "is not a kernel tree"},
	}
	for _, c := range cases {
		code, _, stderr := fusevm(t, "run", "--kernel", c.spec, "--cache", cache, "--out", t.TempDir(), "--scenarios", "smoke-passthrough")
		if code == 0 || code > 127 {
			t.Errorf("%s: exit %d", c.spec, code)
		}
		if errs := errorLines(stderr); len(errs) != 1 || !strings.Contains(errs[0], c.want) {
			t.Errorf("%s: stderr %q: want one error line containing %q", c.spec, stderr, c.want)
		}
	}
	// Nothing half-written is left in the source cache.
	entries, _ := os.ReadDir(filepath.Join(cache, "src"))
	for _, e := range entries {
		t.Errorf("cache holds %s after failures", e.Name())
	}
}

// errorLines returns the stderr lines that report an error (progress lines
// start with "==>").
func errorLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "==>") {
			out = append(out, l)
		}
	}
	return out
}

func TestGitRevisionMissing(t *testing.T) {
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q"}, {"-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "x"}} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatal(string(out))
		}
	}
	code, _, stderr := fusevm(t, "run", "--kernel", "git:"+repo+"@no-such-rev", "--cache", t.TempDir(), "--out", t.TempDir())
	if code != exitFail || !strings.Contains(stderr, `revision "no-such-rev" does not exist`) {
		t.Errorf("exit %d stderr %q", code, stderr)
	}
}

func TestCacheUsageErrors(t *testing.T) {
	cache := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"cache"}, `want "cache verify" or "cache prune"`},
		{[]string{"cache", "tidy"}, `unknown subcommand "tidy"`},
		{[]string{"cache", "verify", "--cache", cache, "extra"}, `unexpected argument "extra"`},
		{[]string{"cache", "verify", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"cache", "prune", "--cache", cache}, "give --max-size SIZE"},
		{[]string{"cache", "prune", "--cache", cache, "--max-size", "lots"}, `--max-size "lots": want bytes`},
		{[]string{"cache", "prune", "--cache", cache, "--max-size", "-1G"}, `--max-size "-1G"`},
		{[]string{"cache", "prune", "--cache", cache, "--kind", "bogus"}, `--kind "bogus": want one of kernels, src`},
	}
	for _, c := range cases {
		code, _, stderr := fusevm(t, c.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", c.args, code, exitUsage, stderr)
		}
		if errs := errorLines(stderr); len(errs) != 1 || !strings.Contains(errs[0], c.want) {
			t.Errorf("%v: stderr %q: want one line containing %q", c.args, stderr, c.want)
		}
	}
}

func TestCacheVerifyAndPrune(t *testing.T) {
	cache := t.TempDir()
	init := filepath.Join(t.TempDir(), "init")
	os.WriteFile(init, []byte("#!/bin/true\n"), 0o755)
	img, err := initramfs.Pack(cache, map[string]string{"init": init})
	if err != nil {
		t.Fatal(err)
	}
	name := "initramfs/" + filepath.Base(img)
	code, stdout, stderr := fusevm(t, "cache", "verify", "--cache", cache)
	if code != exitOK || !regexp.MustCompile(regexp.QuoteMeta(name)+`.* ok\n`).MatchString(stdout) {
		t.Errorf("intact cache: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	os.WriteFile(img, []byte("not the image"), 0o644)
	code, stdout, stderr = fusevm(t, "cache", "verify", "--cache", cache)
	if code != exitFail || !strings.Contains(stdout, "DAMAGED: "+filepath.Base(img)+" damaged (sha256 mismatch)") || !strings.Contains(stderr, "1 of 1 cache entries damaged") {
		t.Errorf("damaged image: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	// The next use makes the image again.
	if again, err := initramfs.Pack(cache, map[string]string{"init": init}); err != nil || again != img {
		t.Fatalf("repack: %s %v", again, err)
	}
	if code, stdout, _ = fusevm(t, "cache", "verify", "--cache", cache); code != exitOK {
		t.Errorf("after repacking: exit %d stdout %q", code, stdout)
	}
	code, stdout, stderr = fusevm(t, "cache", "prune", "--cache", cache, "--kind", "initramfs")
	if code != exitOK || !strings.Contains(stdout, "removed "+name) || !strings.Contains(stdout, "after:  empty") {
		t.Errorf("prune: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if _, err := os.Stat(img); !os.IsNotExist(err) {
		t.Errorf("pruned image still there: %v", err)
	}
}
