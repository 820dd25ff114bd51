package kernel

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFragment(t *testing.T) {
	dir := t.TempDir()
	p := writeFile(t, filepath.Join(dir, "a.config"), "# comment\nCONFIG_FUSE_FS=y\n\n# CONFIG_SLUB_TINY is not set\nCONFIG_LOG_BUF_SHIFT=17\nCONFIG_CMDLINE=\"x y\"\n")
	opts, err := ParseFragment(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Option{
		{Name: "FUSE_FS", Value: "y", From: "a.config:2"},
		{Name: "SLUB_TINY", Value: "n", From: "a.config:4"},
		{Name: "LOG_BUF_SHIFT", Value: "17", From: "a.config:5"},
		{Name: "CMDLINE", Value: `"x y"`, From: "a.config:6"},
	}
	if len(opts) != len(want) {
		t.Fatalf("got %v", opts)
	}
	for i := range want {
		if opts[i] != want[i] {
			t.Errorf("option %d: got %+v, want %+v", i, opts[i], want[i])
		}
	}
	bad := writeFile(t, filepath.Join(dir, "bad.config"), "CONFIG_A=y\nFUSE_FS=y\n")
	if _, err := ParseFragment(bad); err == nil || !strings.Contains(err.Error(), "bad.config:2") {
		t.Errorf("bad fragment: got %v, want an error naming bad.config:2", err)
	}
}

func TestMergeLaterWins(t *testing.T) {
	a := []Option{{Name: "A", Value: "y"}, {Name: "B", Value: "y"}}
	b := []Option{{Name: "B", Value: "n"}, {Name: "C", Value: "m"}}
	got := MergeOptions(a, b)
	if len(got) != 3 || got[1].Value != "n" || got[2].Name != "C" {
		t.Errorf("merge: %+v", got)
	}
}

func TestConfigureValidates(t *testing.T) {
	tree := fakeTree(t, "FUSE_FS", "TMPFS")
	out := filepath.Join(tree, ".out")
	ok := []Option{{Name: "FUSE_FS", Value: "y", From: "base.config:1"}, {Name: "TMPFS", Value: "y", From: "base.config:2"}}
	if err := Configure(context.Background(), tree, out, ok, nil); err != nil {
		t.Fatalf("configure: %v", err)
	}
	cfg, err := ReadConfig(filepath.Join(out, ".config"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg["FUSE_FS"] != "y" || cfg["64BIT"] != "y" {
		t.Errorf(".config: %v", cfg)
	}
	// FUSE_PASSTHROUGH is unknown to the fake Kconfig: olddefconfig drops it.
	lost := append(ok, Option{Name: "FUSE_PASSTHROUGH", Value: "y", From: "base.config:3"}, Option{Name: "KASAN", Value: "y", From: "debug.config:1"})
	err = Configure(context.Background(), tree, out, lost, nil)
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want ConfigError, got %v", err)
	}
	if len(ce.Mismatches) != 2 {
		t.Fatalf("mismatches: %+v", ce.Mismatches)
	}
	msg := err.Error()
	for _, want := range []string{"CONFIG_FUSE_PASSTHROUGH=y (base.config:3) became not set", "CONFIG_KASAN=y (debug.config:1)"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}
