package kernel

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestHumanSize(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0B"}, {512, "512B"}, {1023, "1023B"},
		{1024, "1.0K"}, {1536, "1.5K"}, {1<<20 - 1, "1024.0K"},
		{1 << 20, "1.0M"}, {52 << 20, "52.0M"}, {1932735283, "1.8G"},
		{3 << 40, "3.0T"}, {5 << 50, "5.0P"}, {2048 << 50, "2048.0P"},
	} {
		if got := HumanSize(c.n); got != c.want {
			t.Errorf("HumanSize(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestFormatSizes(t *testing.T) {
	for _, c := range []struct {
		sizes map[string]int64
		want  string
	}{
		{nil, "empty"},
		{map[string]int64{}, "empty"},
		// Kinds order, whatever the map's; a kind of size 0 is listed.
		{map[string]int64{"src": 1932735283, "kernels": 52 << 20}, "kernels 52.0M, src 1.8G = 1.9G"},
		{map[string]int64{"apt": 0, "initramfs": 4096}, "initramfs 4.0K, apt 0B = 4.0K"},
	} {
		if got := FormatSizes(c.sizes); got != c.want {
			t.Errorf("FormatSizes(%v) = %q, want %q", c.sizes, got, c.want)
		}
	}
}

// TestWriteEntries prints verify's table, the sizes, and counts the
// damaged entries.
func TestWriteEntries(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.Local)
	entries := []EntryStatus{
		{Kind: "kernels", Name: "kernels/k1", Size: 52 << 20, Time: at, Checked: true},
		{Kind: "src", Name: "src/debian-7.3", Size: 1 << 30, Time: at, Locked: true},
		{Kind: "initramfs", Name: "initramfs/0123.cpio", Size: 4096, Time: at, Checked: true, Damage: &DamageError{File: "0123.cpio", Why: "sha256 mismatch"}},
	}
	var b strings.Builder
	WriteEntries(&b, entries)
	want := `KIND       ENTRY                                        SIZE  LAST USE          STATUS
kernels    kernels/k1                                  52.0M  2026-12-01 09:30  ok
src        src/debian-7.3                               1.0G  2026-12-01 09:30  - (in use)
initramfs  initramfs/0123.cpio                          4.0K  2026-12-01 09:30  DAMAGED: 0123.cpio damaged (sha256 mismatch)
size: kernels 52.0M, src 1.0G, initramfs 4.0K = 1.1G
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if err := Damaged(entries); err == nil || !strings.HasPrefix(err.Error(), "1 of 3 cache entries damaged (") {
		t.Errorf("Damaged: %v", err)
	}
	if err := Damaged(entries[:2]); err != nil {
		t.Errorf("Damaged without damage: %v", err)
	}
	locked := EntryStatus{Checked: true, Locked: true, Damage: errors.New("x")}
	if got := locked.Status(); got != "DAMAGED: x (in use)" {
		t.Errorf("Status() = %q", got)
	}
}

func TestPruneResultWriteText(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 30, 0, 0, time.Local)
	r := &PruneResult{
		Removed: []EntryStatus{{Kind: "kernels", Name: "kernels/k1", Size: 52 << 20, Time: at}},
		Skipped: []EntryStatus{{Kind: "kernels", Name: "kernels/k2", Size: 1 << 20, Time: at}},
		Before:  map[string]int64{"kernels": 53 << 20},
		After:   map[string]int64{"kernels": 1 << 20},
	}
	var b strings.Builder
	r.WriteText(&b)
	want := `before: kernels 53.0M = 53.0M
removed kernels/k1                                  52.0M  last used 2026-12-01 09:30
kept    kernels/k2                                   1.0M  in use
after:  kernels 1.0M = 1.0M
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	(&PruneResult{}).WriteText(&b)
	if b.String() != "before: empty\nafter:  empty\n" {
		t.Errorf("nothing pruned:\n%s", b.String())
	}
}
