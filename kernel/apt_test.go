package kernel

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fakeAptCache puts an apt-cache on PATH that answers madison with the
// given lines and counts its calls in the returned file. A fake: the real
// one needs package lists fetched from a mirror.
func fakeAptCache(t *testing.T, madison string) (calls string) {
	t.Helper()
	bin := t.TempDir()
	calls = filepath.Join(bin, "calls")
	script := "#!/bin/sh\necho x >> " + calls + "\ncat <<'EOF'\n" + madison + "EOF\n"
	if err := os.WriteFile(filepath.Join(bin, "apt-cache"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return calls
}

func countCalls(t *testing.T, calls string) int {
	data, err := os.ReadFile(calls)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "x")
}

// TestVersionsRememberedWhileListsStay: madison runs once for a package
// while the lists are unchanged, again once a list changes, and not at
// all for what it did not find.
func TestVersionsRememberedWhileListsStay(t *testing.T) {
	calls := fakeAptCache(t, ` linux-source-7.3 | 7.3.4-1~bpo13+1 | http://mirror trixie-backports/main amd64 Packages
 linux-source-7.3 | 7.3.5-1 | http://mirror sid/main amd64 Packages
`)
	a := &privateApt{dir: t.TempDir()}
	list := filepath.Join(a.dir, "lists", "mirror_dists_sid_main_binary-amd64_Packages")
	writeFile(t, list, "Package: linux-source-7.3\n")
	ctx := context.Background()
	want := []string{"7.3.5-1", "7.3.4-1~bpo13+1"}
	for i := range 2 {
		got, err := a.versions(ctx, "linux-source-7.3")
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("call %d: %q, %v; want %q", i+1, got, err, want)
		}
	}
	if n := countCalls(t, calls); n != 1 {
		t.Errorf("apt-cache ran %d times for two lookups with the same lists, want 1", n)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(list, later, later); err != nil { // apt update rewrote it
		t.Fatal(err)
	}
	if _, err := a.versions(ctx, "linux-source-7.3"); err != nil {
		t.Fatal(err)
	}
	if n := countCalls(t, calls); n != 2 {
		t.Errorf("apt-cache ran %d times after the lists changed, want 2", n)
	}
	for range 2 {
		if got, err := a.versions(ctx, "linux-source-9.9"); err != nil || len(got) != 0 {
			t.Fatalf("a package madison does not list: %q, %v", got, err)
		}
	}
	if n := countCalls(t, calls); n != 4 {
		t.Errorf("apt-cache ran %d times, want 4: a package not found is asked again (the lists may be refreshed for it)", n)
	}
}

// TestHashRemembered: the sum is kept beside the file and taken again
// when the file changes.
func TestHashRemembered(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "pkg.deb"), "first")
	sum1, err := hashRemembered(path)
	if want, _ := HashFile(path); err != nil || sum1 != want {
		t.Fatalf("first sum %s, %v; want %s", sum1, err, want)
	}
	if _, err := os.Stat(path + ".sha256"); err != nil {
		t.Fatalf("no remembered sum: %v", err)
	}
	// The remembered sum is what is returned while size and mtime hold:
	// plant a different one to see it used.
	st, _ := os.Stat(path)
	planted := strings.Repeat("ab", 32)
	data, _ := os.ReadFile(path + ".sha256")
	os.WriteFile(path+".sha256", []byte(strings.Replace(string(data), sum1, planted, 1)), 0o644)
	if got, _ := hashRemembered(path); got != planted {
		t.Errorf("got %s, want the remembered %s", got, planted)
	}
	if err := os.WriteFile(path, []byte("second"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, st.ModTime().Add(time.Second), st.ModTime().Add(time.Second))
	sum2, err := hashRemembered(path)
	if want, _ := HashFile(path); err != nil || sum2 != want || sum2 == sum1 {
		t.Errorf("after a change: %s, %v; want %s", sum2, err, want)
	}
}
