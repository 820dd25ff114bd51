package fusetestd

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// Umount tears down the mount of state: through its keeper when one
// answers, otherwise (keeper killed) by aborting the connection through
// fusectl and detaching the mount named in the keeper's KeeperFileName.
func Umount(state string) error {
	err := ctl.Umount(state)
	if err == nil {
		return nil
	}
	ki, kerr := ctl.ReadKeeperInfo(state)
	if kerr != nil {
		return fmt.Errorf("%v; and no keeper record to fall back on: %v", err, kerr)
	}
	mounted, merr := fuseabi.IsMountpoint(ki.Mountpoint)
	if merr != nil {
		return merr
	}
	if !mounted {
		return nil
	}
	if conn, cerr := fuseabi.MountConn(ki.Mountpoint); cerr == nil && conn == ki.Conn {
		if aerr := fuseabi.Abort(conn); aerr != nil {
			return aerr
		}
	}
	if uerr := unix.Unmount(ki.Mountpoint, unix.MNT_DETACH); uerr != nil && !errors.Is(uerr, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", ki.Mountpoint, uerr)
	}
	return nil
}
