package vmtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProbeCacheRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "kvm-probe.json")
	a := hostKey{Kernel: "6.18.0-1-amd64", QEMU: "QEMU emulator version 7.2.22", CPU: "AMD EPYC 7B13"}
	b := a
	b.QEMU = "QEMU emulator version 9.2.0"

	if _, ok, err := readProbe(path, a); ok || err != nil {
		t.Fatalf("empty cache: ok=%v err=%v", ok, err)
	}
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := writeProbe(path, a, probeEntry{KVM: kvmBroken, Checked: when, Detail: "silent"}); err != nil {
		t.Fatal(err)
	}
	if err := writeProbe(path, b, probeEntry{KVM: kvmWorks, Checked: when}); err != nil {
		t.Fatal(err)
	}
	e, ok, err := readProbe(path, a)
	if err != nil || !ok || e.KVM != kvmBroken || !e.Checked.Equal(when) || e.Detail != "silent" {
		t.Errorf("key a: %+v ok=%v err=%v", e, ok, err)
	}
	e, ok, err = readProbe(path, b)
	if err != nil || !ok || e.KVM != kvmWorks {
		t.Errorf("key b (other qemu): %+v ok=%v err=%v", e, ok, err)
	}
	c := a
	c.CPU = "Intel(R) Xeon(R) Platinum"
	if _, ok, _ := readProbe(path, c); ok {
		t.Error("another CPU model shares the entry")
	}
	c = a
	c.Kernel = "6.19.0"
	if _, ok, _ := readProbe(path, c); ok {
		t.Error("another host kernel shares the entry")
	}
	// Atomic replacement leaves no temporary files behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("cache dir holds %d files, want 1", len(ents))
	}
}

func TestProbeCacheCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kvm-probe.json")
	os.WriteFile(path, []byte("{not json"), 0o644)
	k := hostKey{Kernel: "k", QEMU: "q", CPU: "c"}
	if _, _, err := readProbe(path, k); err == nil {
		t.Error("corrupt cache read without error")
	}
	if err := writeProbe(path, k, probeEntry{KVM: kvmWorks}); err != nil {
		t.Fatal(err)
	}
	if e, ok, err := readProbe(path, k); err != nil || !ok || e.KVM != kvmWorks {
		t.Errorf("after rewrite: %+v %v %v", e, ok, err)
	}
}

func TestProbeCacheDisabled(t *testing.T) {
	k := hostKey{Kernel: "k"}
	if err := writeProbe("", k, probeEntry{KVM: kvmWorks}); err != nil {
		t.Error(err)
	}
	if _, ok, err := readProbe("", k); ok || err != nil {
		t.Errorf("disabled cache answered: %v %v", ok, err)
	}
}

func TestCPUModel(t *testing.T) {
	info := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n"
	if got := cpuModel([]byte(info)); got != "AMD EPYC 7B13 64-Core Processor" {
		t.Errorf("cpuModel = %q", got)
	}
	if got := cpuModel(nil); got != "unknown" {
		t.Errorf("cpuModel(nil) = %q", got)
	}
}
