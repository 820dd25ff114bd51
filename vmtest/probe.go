package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/internal/atomicfile"
)

// KVM probe verdicts as stored in the cache.
const (
	kvmWorks  = "works"
	kvmBroken = "broken"
)

// probeFile is the on-disk probe cache: one entry per host key.
type probeFile struct {
	Hosts map[string]probeEntry `json:"hosts"`
}

// probeEntry is what one host learned about KVM.
type probeEntry struct {
	KVM     string    `json:"kvm"` // kvmWorks or kvmBroken
	Checked time.Time `json:"checked"`
	Detail  string    `json:"detail,omitempty"`
}

// hostKey identifies what decides whether KVM boots here: the host kernel
// release, the QEMU version and the CPU model.
type hostKey struct {
	Kernel string
	QEMU   string
	CPU    string
}

func (k hostKey) String() string {
	return "kernel=" + k.Kernel + "; qemu=" + k.QEMU + "; cpu=" + k.CPU
}

// currentHostKey computes the key for this host and QEMU binary.
func currentHostKey(ctx context.Context, qemu string) (hostKey, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return hostKey{}, fmt.Errorf("uname: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, qemu, "--version").Output()
	if err != nil {
		return hostKey{}, fmt.Errorf("%s --version: %w", qemu, err)
	}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	return hostKey{
		Kernel: unix.ByteSliceToString(uts.Release[:]),
		QEMU:   firstLine(out),
		CPU:    cpuModel(cpuinfo),
	}, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo text.
func cpuModel(cpuinfo []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(s)
}

// readProbe returns the cached verdict for key ("" when none).
func readProbe(path string, key hostKey) (probeEntry, bool, error) {
	if path == "" {
		return probeEntry{}, false, nil
	}
	f, err := loadProbeFile(path)
	if err != nil {
		return probeEntry{}, false, err
	}
	e, ok := f.Hosts[key.String()]
	return e, ok, nil
}

func loadProbeFile(path string) (*probeFile, error) {
	f := &probeFile{Hosts: map[string]probeEntry{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return nil, fmt.Errorf("probe cache: %w", err)
	}
	if err := json.Unmarshal(b, f); err != nil {
		return nil, fmt.Errorf("probe cache %s: %w", path, err)
	}
	if f.Hosts == nil {
		f.Hosts = map[string]probeEntry{}
	}
	return f, nil
}

// writeProbe records e for key, keeping other hosts' entries. The file is
// replaced atomically (temporary file, then rename). A corrupt file is
// replaced.
func writeProbe(path string, key hostKey, e probeEntry) error {
	if path == "" {
		return nil
	}
	f, err := loadProbeFile(path)
	if err != nil {
		f = &probeFile{Hosts: map[string]probeEntry{}}
	}
	f.Hosts[key.String()] = e
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("probe cache: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("probe cache: %w", err)
	}
	return nil
}

// kvmOpenable reports whether /dev/kvm can be opened read-write.
func kvmOpenable() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}
