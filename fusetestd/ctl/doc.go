// Package ctl is the client side of fusetestd's two UNIX sockets, and the
// single definition of what travels on them: the keeper socket
// (STATEDIR/keeper.sock), which hands the /dev/fuse fd and the saved
// FUSE_INIT request to each daemon generation and takes the umount order,
// and the daemon's control socket (STATEDIR/daemon.sock), which reports the
// status of the serving generation and takes fault-injection orders. Both
// carry JSON lines: one Request object per line, answered by one Response
// object per line; file descriptors ride along as SCM_RIGHTS. It is a leaf:
// it imports only the standard library, so a guest-side
// scenario interpreter can drive the daemon with it.
package ctl
