package fuseabi

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The helpers below take a /dev/fuse file descriptor attached to a
// connection and return the kernel's answer as a bare unix.Errno (nil on
// success), so that callers can compare it and report it by name
// (unix.ErrnoName).

func ioctl(devfd int, req uintptr, arg unsafe.Pointer) (uintptr, error) {
	for {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(devfd), req, uintptr(arg))
		switch errno {
		case 0:
			return r, nil
		case unix.EINTR:
			continue
		default:
			return r, errno
		}
	}
}

// BackingOpen registers the open regular file fd as a backing file of the
// connection and returns its new backing id. The kernel takes its own
// reference of the file: fd may be closed afterwards. Needs passthrough
// negotiated and CAP_SYS_ADMIN (EPERM otherwise).
func BackingOpen(devfd, fd int) (int32, error) {
	m := BackingMap{Fd: int32(fd)}
	r, err := ioctl(devfd, IocBackingOpen, unsafe.Pointer(&m))
	if err != nil {
		return 0, err
	}
	return int32(r), nil
}

// BackingClose drops the id table's reference of backing id. A file still
// open through that id stays in use until its last close. ENOENT: the id is
// not registered.
func BackingClose(devfd int, id int32) error {
	_, err := ioctl(devfd, IocBackingClose, unsafe.Pointer(&id))
	return err
}

// BackingCloseAll issues the v2/v3 close-all ioctl: every id of the
// connection, the caller's own included, is closed. Kernels without the
// series answer ENOTTY.
func BackingCloseAll(devfd int) error {
	_, err := ioctl(devfd, IocBackingCloseAll, nil)
	return err
}

// BackingCloseMinusOne issues BACKING_CLOSE with id -1, which the v1 series
// reads as "close every id". Kernels without v1 answer EINVAL.
func BackingCloseMinusOne(devfd int) error {
	return BackingClose(devfd, -1)
}

// WriteNotifyResend writes a FUSE_NOTIFY_RESEND notification: the kernel
// queues again every request that was read from the connection but not
// answered, with FUSE_UNIQUE_RESEND (bit 63) set in its unique. Linux 6.9.
func WriteNotifyResend(devfd int) error {
	msg := AppendOutHeader(nil, OutHeaderSize, NotifyResend, 0)
	for {
		_, err := unix.Write(devfd, msg)
		if err != unix.EINTR {
			return err
		}
	}
}
