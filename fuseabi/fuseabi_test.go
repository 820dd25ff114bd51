package fuseabi

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioc computes a Linux ioctl number (asm-generic/ioctl.h).
func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

func TestIoctlNumbers(t *testing.T) {
	const write = 1
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"BACKING_OPEN", IocBackingOpen, ioc(write, 229, 1, unsafe.Sizeof(BackingMap{}))},
		{"BACKING_CLOSE", IocBackingClose, ioc(write, 229, 2, 4)},
		{"BACKING_CLOSE_ALL", IocBackingCloseAll, ioc(0, 229, 4, 0)},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if s := unsafe.Sizeof(BackingMap{}); s != 16 {
		t.Errorf("sizeof(BackingMap) = %d, want 16", s)
	}
}

func TestOpcodes(t *testing.T) {
	for in, want := range map[string]Opcode{"lookup": OpLookup, "FUSE_OPEN": OpOpen, " Release ": OpRelease, "14": OpOpen} {
		if got, err := ParseOpcode(in); err != nil || got != want {
			t.Errorf("ParseOpcode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseOpcode("frobnicate"); err == nil {
		t.Error("ParseOpcode accepted an unknown name")
	}
	if s := Opcode(999).String(); s != "OP999" {
		t.Errorf("Opcode(999) = %q", s)
	}
}

func TestHeaders(t *testing.T) {
	b := AppendOutHeader(nil, 16, NotifyResend, 42)
	b = append(b, make([]byte, InHeaderSize-len(b))...) // reuse as an in header
	h, err := ParseInHeader(b)
	if err != nil || h.Len != 16 || h.Opcode != NotifyResend || h.Unique != 42 {
		t.Fatalf("round trip: %+v, %v", h, err)
	}
	if _, err := ParseInHeader(b[:10]); err == nil {
		t.Fatal("short header accepted")
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134`: `/x\`, `/bad\9`: `/bad\9`} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestProbes runs the probes against the running kernel. It cannot know
// which series that kernel carries, so it checks that each probe gives a
// verdict (nil or ErrNotSupported; EPERM without CAP_SYS_ADMIN), and the
// principle of the close-all probe: a command the kernel knows fails with
// EPERM on an unattached fd.
func TestProbes(t *testing.T) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no usable /dev/fuse: %v", err)
	}
	defer unix.Close(fd)
	if err := BackingClose(fd, 1); err != unix.EPERM {
		t.Fatalf("BACKING_CLOSE on an unattached fd: %v, want EPERM", err)
	}
	for name, probe := range map[string]func() error{
		"close-all":       HaveBackingCloseAll,
		"close-minus-one": HaveBackingCloseMinusOne,
		"inode-cache":     func() error { return HaveInodeCache(InodeCacheBitV1) },
	} {
		err := probe()
		t.Logf("%s: %v", name, err)
		if errors.Is(err, unix.EPERM) {
			continue // no CAP_SYS_ADMIN: returned as is, no verdict possible
		}
		if err != nil && !errors.Is(err, ErrNotSupported) {
			t.Errorf("%s: no verdict: %v", name, err)
		}
		if again := probe(); (again == nil) != (err == nil) {
			t.Errorf("%s: second call disagrees: %v", name, again)
		}
	}
}
