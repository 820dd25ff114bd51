package fuseabi

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"fusevm/fuseabi/fuseabitest"
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

// TestStructSizes checks the header sizes against go-fuse's structs, and
// those structs against the kernel's (include/uapi/linux/fuse.h).
func TestStructSizes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uintptr
	}{
		{"fuse_in_header", unsafe.Sizeof(fuse.InHeader{}), InHeaderSize},
		{"fuse_out_header", unsafe.Sizeof(fuse.OutHeader{}), OutHeaderSize},
		{"fuse_init_in", unsafe.Sizeof(fuse.InitIn{}) - InHeaderSize, 64},
		{"fuse_init_out", unsafe.Sizeof(fuse.InitOut{}), 64},
		{"fuse_entry_out", unsafe.Sizeof(fuse.EntryOut{}), 128},
		{"fuse_attr_out", unsafe.Sizeof(fuse.AttrOut{}), 104},
		{"fuse_open_out", unsafe.Sizeof(fuse.OpenOut{}), 16},
	} {
		if tc.got != tc.want {
			t.Errorf("sizeof(%s) = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
}

// request encodes a request to the probe server: a header and body.
func request(op Opcode, nodeid uint64, body []byte) []byte {
	h := fuse.InHeader{Length: uint32(InHeaderSize + len(body)), Opcode: uint32(op), Unique: 7, NodeId: nodeid}
	return append(append([]byte(nil), raw(&h)...), body...)
}

// decodeReply checks a reply's header against its length and unique, and
// copies its payload into out (nil for none). It returns the status.
func decodeReply[T any](t *testing.T, b []byte, out *T) int32 {
	t.Helper()
	var h fuse.OutHeader
	if len(b) < OutHeaderSize || copy(raw(&h), b) != OutHeaderSize || int(h.Length) != len(b) || h.Unique != 7 {
		t.Fatalf("reply %x: bad header %+v", b, h)
	}
	if out != nil && h.Status == 0 {
		if want := OutHeaderSize + len(raw(out)); len(b) != want {
			t.Fatalf("reply of %d bytes, want %d", len(b), want)
		}
		copy(raw(out), b[OutHeaderSize:])
	}
	return h.Status
}

// TestProbeAnswers runs the probe server's replies without a kernel.
func TestProbeAnswers(t *testing.T) {
	initReq := func(flags, flags2 uint32, bodySize int) []byte {
		in := fuse.InitIn{Major: 7, Minor: 41, Flags: flags, Flags2: flags2}
		return request(OpInit, 0, raw(&in)[InHeaderSize:InHeaderSize+bodySize])
	}
	for _, tc := range []struct {
		name    string
		req     []byte
		offered bool
	}{
		{"passthrough offered", initReq(InitExt, InitPassthrough>>32, 64), true},
		{"flags2 without FUSE_INIT_EXT", initReq(0, InitPassthrough>>32, 64), false},
		{"pre-7.36 fuse_init_in", initReq(0, 0, 16), false},
	} {
		pc := &probeConn{}
		var out fuse.InitOut
		if st := decodeReply(t, pc.answer(tc.req), &out); st != 0 {
			t.Fatalf("%s: status %d", tc.name, st)
		}
		if pc.offered != tc.offered {
			t.Errorf("%s: offered = %v", tc.name, pc.offered)
		}
		if out.Major != 7 || out.Minor != 41 || out.Flags64() != InitExt|InitPassthrough || out.MaxStackDepth != 1 {
			t.Errorf("%s: INIT reply %+v", tc.name, out)
		}
	}

	pc := &probeConn{}
	var entry fuse.EntryOut
	if st := decodeReply(t, pc.answer(request(OpLookup, RootID, []byte("f\x00"))), &entry); st != 0 ||
		entry.NodeId != probeFileNodeID || entry.Ino != probeFileNodeID || entry.Mode != unix.S_IFREG|0o444 {
		t.Errorf("LOOKUP f: status %d, %+v", st, entry)
	}
	if st := decodeReply[struct{}](t, pc.answer(request(OpLookup, RootID, []byte("g\x00"))), nil); st != -int32(unix.ENOENT) {
		t.Errorf("LOOKUP g: status %d, want -ENOENT", st)
	}
	var attr fuse.AttrOut
	if st := decodeReply(t, pc.answer(request(OpGetattr, RootID, make([]byte, 16))), &attr); st != 0 ||
		attr.Ino != RootID || attr.Mode != unix.S_IFDIR|0o555 || attr.Nlink != 2 {
		t.Errorf("GETATTR root: status %d, %+v", st, attr)
	}
	pc.setOpenReply(OpenPassthrough|1<<InodeCacheBitV1, 5)
	var open fuse.OpenOut
	if st := decodeReply(t, pc.answer(request(OpOpen, probeFileNodeID, make([]byte, 8))), &open); st != 0 ||
		open.OpenFlags != OpenPassthrough|1<<InodeCacheBitV1 || open.BackingID != 5 {
		t.Errorf("OPEN f: status %d, %+v", st, open)
	}
	if st := decodeReply[struct{}](t, pc.answer(request(OpOpen, RootID, make([]byte, 8))), nil); st != -int32(unix.EISDIR) {
		t.Errorf("OPEN root: status %d, want -EISDIR", st)
	}
	if st := decodeReply[struct{}](t, pc.answer(request(OpRelease, probeFileNodeID, make([]byte, 24))), nil); st != 0 {
		t.Errorf("RELEASE: status %d", st)
	}
	if st := decodeReply[struct{}](t, pc.answer(request(Opcode(15), probeFileNodeID, nil)), nil); st != -int32(unix.ENOSYS) {
		t.Errorf("READ: status %d, want -ENOSYS", st)
	}
	if r := pc.answer(request(OpForget, probeFileNodeID, make([]byte, 8))); r != nil {
		t.Errorf("FORGET answered: %x", r)
	}
	if r := pc.answer(make([]byte, InHeaderSize-1)); r != nil {
		t.Errorf("short request answered: %x", r)
	}
}

// TestProbeConnServes mounts the probe filesystem on the running kernel and
// uses it the way the probes do: the kernel must accept every reply.
func TestProbeConnServes(t *testing.T) {
	err := withProbeConn(func(pc *probeConn) error {
		var st unix.Stat_t
		if err := unix.Stat(pc.dir, &st); err != nil || st.Mode != unix.S_IFDIR|0o555 || st.Ino != RootID {
			t.Errorf("stat root: %v, mode %o ino %d", err, st.Mode, st.Ino)
		}
		if err := unix.Stat(filepath.Join(pc.dir, "f"), &st); err != nil || st.Mode != unix.S_IFREG|0o444 || st.Ino != probeFileNodeID {
			t.Errorf("stat f: %v, mode %o ino %d", err, st.Mode, st.Ino)
		}
		id, err := pc.register()
		if err != nil {
			return err
		}
		pc.setOpenReply(OpenPassthrough, id)
		fd, err := pc.openFile()
		if err != nil {
			t.Errorf("passthrough open: %v", err)
			return nil
		}
		defer unix.Close(fd)
		if n, err := unix.Read(fd, make([]byte, 16)); n != 0 || err != nil {
			t.Errorf("read through the empty backing file: %d, %v", n, err)
		}
		return nil
	})
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOENT):
		t.Skipf("no FUSE mount possible: %v", err)
	case errors.Is(err, ErrNotSupported):
		t.Skipf("kernel without FUSE passthrough: %v", err)
	case err != nil:
		t.Fatal(err)
	}
}

// requireUnpatchedHost skips t unless the probes can answer on this host:
// root (they mount FUSE and register backing files), a usable /dev/fuse
// and a kernel that offers FUSE passthrough. The host kernel is taken as
// unpatched, as the project's machines are (the series is in no released
// kernel); FUSEVM_HOST_PATCHED=1 says it carries (part of) the series.
func requireUnpatchedHost(t *testing.T) {
	t.Helper()
	fuseabitest.RequireUnpatchedHost(t)
	err := withProbeConn(func(*probeConn) error { return nil })
	switch {
	case errors.Is(err, errNoPassthrough):
		t.Skipf("kernel without FUSE passthrough: %v", err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOENT):
		t.Skipf("no FUSE mount possible: %v", err)
	case err != nil:
		t.Fatal(err)
	}
}

// hostProbes are the probes as the guest agent runs them, the inode-cache
// flag at each bit a port of the series uses (8 on 6.12 and 7.2, 9 on 7.3).
var hostProbes = []struct {
	name  string
	probe func() error
}{
	{"close-all", HaveBackingCloseAll},
	{"close-minus-one", HaveBackingCloseMinusOne},
	{"inode-cache bit 8", func() error { return HaveInodeCache(8) }},
	{"inode-cache bit 9", func() error { return HaveInodeCache(9) }},
}

// TestProbesSayNoOnUnpatchedHost fails if a probe answers "supported" on
// the unpatched host: such a probe would make the guest report a feature
// the baseline lacks, and would make the host scenario test skip as if the
// host carried the series.
func TestProbesSayNoOnUnpatchedHost(t *testing.T) {
	requireUnpatchedHost(t)
	for _, p := range hostProbes {
		if err := p.probe(); err == nil {
			t.Errorf("%s: answers supported on an unpatched kernel", p.name)
		}
	}
}

// TestProbesTellOnUnpatchedHost checks that every probe gives a verdict on
// the unpatched host, "not supported" (ErrNotSupported, with what it saw),
// not "could not tell".
func TestProbesTellOnUnpatchedHost(t *testing.T) {
	requireUnpatchedHost(t)
	want := map[string]string{
		"close-all":         "FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY: ",
		"close-minus-one":   "FUSE_DEV_IOC_BACKING_CLOSE(-1) answers EINVAL: ",
		"inode-cache bit 8": "a passthrough reopen with FOPEN_PASSTHROUGH_INODE_CACHE (bit 8) and a closed backing id fails with E",
		"inode-cache bit 9": "a passthrough reopen with FOPEN_PASSTHROUGH_INODE_CACHE (bit 9) and a closed backing id fails with E",
	}
	for _, p := range hostProbes {
		err := p.probe()
		t.Logf("%s: %v", p.name, err)
		switch {
		case err == nil:
			// TestProbesSayNoOnUnpatchedHost reports it.
		case !errors.Is(err, ErrNotSupported):
			t.Errorf("%s: could not tell: %v", p.name, err)
		case !strings.HasPrefix(err.Error(), want[p.name]):
			t.Errorf("%s: %q does not say what the probe saw (want %q...)", p.name, err, want[p.name])
		}
	}
}
