package progress

import (
	"strings"
	"testing"
	"time"

	"fusevm/harness"
)

// TestProgressLine: on a terminal, the live line names the stage and the
// variant, the time since the start, the ETA and the VMs done.
func TestProgressLine(t *testing.T) {
	var b strings.Builder
	p := &Line{w: &b, tty: true, width: 100, stop: make(chan struct{})}
	now := time.Now()
	p.Status(harness.Status{Stage: "prepare", Variant: "debian-7.3 v2", Started: now.Add(-83 * time.Second), Finish: now.Add(280 * time.Second), Total: 5})
	p.Stage("build 7.3.4 + 2 patches")
	got := b.String()
	last := got[strings.LastIndex(got, "\r\033[K")+4:]
	if !strings.HasPrefix(last, "==> debian-7.3 v2: build 7.3.4 + 2 patches  [1:23, ETA 4:") || !strings.HasSuffix(last, ", VMs 0/5]") {
		t.Errorf("live line %q", last)
	}
	// Without timings there is no ETA; a boot stage names its variant.
	b.Reset()
	p.Status(harness.Status{Stage: "boot", Variant: "debian-7.3 v2", Started: now, Done: 1, Total: 5})
	p.Stage("boot 7.3.4 v2 (18 scenarios)")
	got = b.String()
	if last := got[strings.LastIndex(got, "\r\033[K")+4:]; last != "==> boot 7.3.4 v2 (18 scenarios)  [0:00, VMs 1/5]" {
		t.Errorf("live line %q", last)
	}
	p.Close()
	if !strings.HasSuffix(b.String(), "\r\033[K") {
		t.Error("close leaves the live line")
	}
	// In a log: plain lines, no status line.
	b.Reset()
	plain := &Line{w: &b}
	plain.Status(harness.Status{Stage: "boot", Variant: "k v", Started: now})
	plain.Stage("boot 7.3.4 v2 (18 scenarios)")
	plain.Done("boot 7.3.4 v2 (18 scenarios)", 7*time.Second)
	if b.String() != "==> boot 7.3.4 v2 (18 scenarios)\n==> boot 7.3.4 v2 (18 scenarios): done in 7s\n" {
		t.Errorf("plain progress %q", b.String())
	}
	plain.Close()
}
