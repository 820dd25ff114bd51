package fuseabi

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotSupported is returned, wrapped, by the Have* probes when the running
// kernel lacks the feature. Test with errors.Is.
var ErrNotSupported = errors.New("not supported by the running kernel")

// errNoPassthrough is what the probes that need a connection find on a
// kernel that does not offer FUSE passthrough at INIT.
var errNoPassthrough = fmt.Errorf("the kernel offers no FUSE passthrough: %w", ErrNotSupported)

// The probes follow one convention: nil means the feature is there;
// ErrNotSupported, wrapped in what the probe saw
// ("FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY: not supported by the
// running kernel"), means it is not; EPERM or EACCES (no CAP_SYS_ADMIN, no
// access to /dev/fuse) says nothing about the kernel and is returned
// wrapped with the feature's name (test with errors.Is); anything else is
// wrapped as unexpected ("could not tell"). Results are computed once per
// process.

// notSupported is a probe's answer "the kernel lacks it": what the probe
// saw, wrapping ErrNotSupported.
func notSupported(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), ErrNotSupported)
}

// HaveBackingCloseAll probes for FUSE_DEV_IOC_BACKING_CLOSE_ALL, the
// close-all ioctl of the v2 and v3 series (not in mainline as of 7.3.4).
//
// It is side-effect free: it issues the ioctl on a fresh /dev/fuse fd that is
// attached to no connection. A kernel that does not know the command fails it
// in the ioctl switch with ENOTTY; a kernel that knows it gets past the
// switch and fails for the missing connection (EPERM) instead.
func HaveBackingCloseAll() error { return haveCloseAll() }

var haveCloseAll = sync.OnceValue(func() error {
	const name = "FUSE_DEV_IOC_BACKING_CLOSE_ALL"
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return classify(name, &os.PathError{Op: "open", Path: "/dev/fuse", Err: err})
	}
	defer unix.Close(fd)
	switch err := BackingCloseAll(fd); err {
	case unix.ENOTTY:
		return notSupported("%s answers ENOTTY", name)
	default:
		// nil or the refusal of an unattached device: the command is known.
		return nil
	}
})

// HaveBackingCloseMinusOne probes for the v1 series' reading of
// FUSE_DEV_IOC_BACKING_CLOSE with id -1 as "close every id".
//
// Unknown ids are refused only after the device is found attached, so the
// probe needs a connection: it mounts a private throwaway FUSE filesystem
// (needs CAP_SYS_ADMIN), negotiates passthrough, and issues the ioctl there;
// unpatched kernels answer EINVAL. The caller's own connections are not
// touched.
func HaveBackingCloseMinusOne() error { return haveCloseMinusOne() }

var haveCloseMinusOne = sync.OnceValue(func() error {
	const name = "FUSE_DEV_IOC_BACKING_CLOSE(-1)"
	return classify(name, withProbeConn(func(pc *probeConn) error {
		switch err := BackingCloseMinusOne(pc.dev); err {
		case nil:
			return nil
		case unix.EINVAL:
			return notSupported("%s answers EINVAL", name)
		default:
			return err
		}
	}))
})

// HaveInodeCache probes for the v1 series' FOPEN_PASSTHROUGH_INODE_CACHE open
// flag at bit number bit (InodeCacheBitV1 on the series' own base).
//
// Nothing announces the flag (no ioctl, no INIT bit), so it is probed by its
// effect only, on a private throwaway FUSE mount (needs CAP_SYS_ADMIN): a
// file is opened with passthrough through a live backing id, and while it
// stays open it is opened again with the flag and a backing id that was
// already closed. A kernel with the flag reuses the inode's backing file and
// the second open succeeds. Any other kernel fails it: it refuses
// passthrough opens carrying open flags outside the ones it allows
// (EINVAL, seen as EIO by the opener), and would not find the stale id
// anyway.
func HaveInodeCache(bit uint) error {
	inodeCacheMu.Lock()
	defer inodeCacheMu.Unlock()
	if err, ok := inodeCacheResults[bit]; ok {
		return err
	}
	name := fmt.Sprintf("FOPEN_PASSTHROUGH_INODE_CACHE (bit %d)", bit)
	err := classify(name, withProbeConn(func(pc *probeConn) error { return probeInodeCache(pc, name, bit) }))
	inodeCacheResults[bit] = err
	return err
}

var (
	inodeCacheMu      sync.Mutex
	inodeCacheResults = map[uint]error{}
)

func probeInodeCache(pc *probeConn, name string, bit uint) error {
	live, err := pc.register()
	if err != nil {
		return err
	}
	stale, err := pc.register()
	if err != nil {
		return err
	}
	if err := BackingClose(pc.dev, stale); err != nil {
		return fmt.Errorf("close probe id %d: %w", stale, err)
	}
	pc.setOpenReply(OpenPassthrough, live)
	first, err := pc.openFile()
	if err != nil {
		return fmt.Errorf("passthrough open with a live id: %w", err)
	}
	defer unix.Close(first)
	pc.setOpenReply(OpenPassthrough|1<<bit, stale)
	second, err := pc.openFile()
	switch err {
	case nil:
		unix.Close(second)
		return nil
	case unix.EIO, unix.ENOENT, unix.EBUSY:
		return notSupported("a passthrough reopen with %s and a closed backing id fails with %s", name, unix.ErrnoName(err.(unix.Errno)))
	default:
		return fmt.Errorf("passthrough open with the flag and a stale id: %w", err)
	}
}

// classify sorts a probe's outcome by the package convention.
func classify(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errNoPassthrough):
		return fmt.Errorf("%s cannot be used: %w", name, err)
	case errors.Is(err, ErrNotSupported):
		return err // notSupported named what was seen
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("probing %s: %w", name, err)
	default:
		return fmt.Errorf("unexpected error probing %s: %w", name, err)
	}
}
