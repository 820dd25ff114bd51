package fuseabi

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// FusectlDir is where the fusectl filesystem shows one directory per FUSE
// connection, named by the connection's device number.
const FusectlDir = "/sys/fs/fuse/connections"

// MountConn returns the connection number (the fusectl directory name) of the
// FUSE filesystem mounted at mountpoint, read from /proc/self/mountinfo. It
// never touches the mount itself, so it is safe before the daemon has
// answered FUSE_INIT and while no daemon runs.
func MountConn(mountpoint string) (uint32, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return 0, err
	}
	entries, err := mountInfo()
	if err != nil {
		return 0, err
	}
	var conn uint32
	found := false
	for _, e := range entries {
		if e.mountpoint == abs && (e.fstype == "fuse" || strings.HasPrefix(e.fstype, "fuse.") || e.fstype == "fuseblk") {
			conn, found = e.dev, true // the last one listed is on top
		}
	}
	if !found {
		return 0, fmt.Errorf("no FUSE filesystem is mounted at %s", abs)
	}
	return conn, nil
}

// IsMountpoint reports whether anything is mounted at path, from
// /proc/self/mountinfo (path itself is not touched).
func IsMountpoint(path string) (bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	entries, err := mountInfo()
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.mountpoint == abs {
			return true, nil
		}
	}
	return false, nil
}

// EnsureFusectl mounts fusectl at FusectlDir unless it is mounted already.
func EnsureFusectl() error {
	entries, err := mountInfo()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.fstype == "fusectl" && e.mountpoint == FusectlDir {
			return nil
		}
	}
	if err := unix.Mount("fusectl", FusectlDir, "fusectl", 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount fusectl at %s: %w", FusectlDir, err)
	}
	return nil
}

// Abort aborts FUSE connection conn through fusectl (mounting fusectl if
// needed): every pending and future request fails with ENOTCONN, blocked
// callers wake up. Backing ids stay registered until the connection is freed.
func Abort(conn uint32) error {
	if err := EnsureFusectl(); err != nil {
		return err
	}
	p := filepath.Join(FusectlDir, strconv.FormatUint(uint64(conn), 10), "abort")
	if err := os.WriteFile(p, []byte("1"), 0); err != nil {
		return fmt.Errorf("abort FUSE connection %d: %w", conn, err)
	}
	return nil
}

// Waiting returns the number of requests of connection conn that wait for an
// answer (queued or read by a daemon), from fusectl.
func Waiting(conn uint32) (int, error) {
	if err := EnsureFusectl(); err != nil {
		return 0, err
	}
	p := filepath.Join(FusectlDir, strconv.FormatUint(uint64(conn), 10), "waiting")
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

type mountEntry struct {
	dev        uint32 // kernel dev_t: major<<20 | minor
	mountpoint string
	fstype     string
}

func mountInfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+1 >= len(fields) {
			continue
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(fields[2], "%d:%d", &major, &minor); err != nil {
			continue
		}
		out = append(out, mountEntry{
			dev:        major<<20 | minor,
			mountpoint: unescapeOctal(fields[4]),
			fstype:     fields[sep+1],
		})
	}
	return out, sc.Err()
}

// unescapeOctal undoes the \ooo escapes mountinfo uses for space, tab,
// newline and backslash.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
