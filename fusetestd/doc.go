// Package fusetestd is fusevm's test FUSE daemon: a passthrough server of a
// backing directory that survives its own crashes the way production FUSE
// servers do, so that scenarios exercise the kernel paths under test
// exactly as in the field. Main is its CLI (command fusetestd, and the
// fusevm binary started as fusetestd); package fusetestd/ctl is the client
// of its sockets. A scenario interpreter drives it through those two and
// the files on the mount only.
//
// # Processes
//
// The keeper (`fusetestd keeper --mount MNT --state STATEDIR`) opens
// /dev/fuse, mounts MNT, reads the FUSE_INIT request and holds both for the
// connection's whole life. It never opens a file on the mount and never
// forks. It prints "keeper ready conn=N pid=P" on stdout once
// STATEDIR/keeper.sock serves, and tears down (unmount; abort through
// fusectl when no daemon holds the connection or the mount is busy) on
// SIGTERM, SIGINT or `fusetestd umount --state STATEDIR`.
//
// A daemon generation (`fusetestd serve --state STATEDIR --backing DIR`)
// takes the /dev/fuse fd and the INIT bytes from the keeper over
// SCM_RIGHTS, feeds INIT to a fresh go-fuse ProtocolServer (the first
// generation writes the reply, later ones discard it: the kernel negotiates
// once), checks that BACKING_OPEN is allowed by registering and closing a
// probe backing file (no CAP_SYS_ADMIN: it exits with "passthrough refused"
// unless --no-passthrough; --no-probe skips the check, so that the
// generation takes no backing id of its own), applies its recovery
// strategy, writes FUSE_NOTIFY_RESEND when an earlier generation existed
// (the kernel resends every request that one had read and not answered),
// then serves with several reader goroutines and prints "serving
// generation=G pid=P" on stdout. SIGKILL is the crash: nothing depends on
// a clean exit. The keeper grants the connection to one generation at a
// time; a new one waits up to a second for the old one's socket to close,
// or indefinitely with --standby (which first prints "standby pid=P").
//
// # Serving
//
// nodeid = backing inode number (the backing root is nodeid 1), so a
// successor resolves every nodeid the kernel still holds, scanning the
// backing tree for ones it has not seen. Implemented: LOOKUP, GETATTR,
// SETATTR, OPEN, CREATE, READ, WRITE, FLUSH, FSYNC, RELEASE, UNLINK, MKDIR,
// RMDIR, OPENDIR, READDIR, RELEASEDIR, STATFS; others answer ENOSYS. The
// backing tree must be one filesystem, without hard links to its root.
//
// OPEN and CREATE register the backing file with
// FUSE_DEV_IOC_BACKING_OPEN and answer FOPEN_PASSTHROUGH with its id
// (plus FOPEN_PASSTHROUGH_INODE_CACHE with --inode-cache, which kernels
// without v1 refuse: every such open fails with EIO), or answer
// plainly and serve READ/WRITE when passthrough was not negotiated or
// --no-passthrough is given. Id policy: one id per inode per generation,
// refcounted over its handles and closed at the last RELEASE, or a fresh id
// per OPEN with --id-per-open. A RELEASE of a handle opened by a dead
// generation is answered and ignored. Ids are not persisted, except by
// --recovery adopt.
//
// # Recovery strategies (--recovery)
//
//   - none: leave the dead generations' ids registered (what daemons do
//     today: they leak).
//   - close-all: FUSE_DEV_IOC_BACKING_CLOSE_ALL (v2/v3); ENOTTY elsewhere,
//     reported, not fatal.
//   - close-minus-one: BACKING_CLOSE(-1) (v1); EINVAL elsewhere.
//   - scan-close: on any kernel: register a probe file to learn the cyclic
//     id counter N, then BACKING_CLOSE 1..N-1. Limits: N-1 ioctls however
//     few ids live; misses ids above N once the counter has wrapped past
//     INT_MAX; closes every id, so it runs before serving. With
//     --no-probe there is no probe id: it closes nothing and reports
//     ENOTSUP.
//   - adopt: every OPEN and RELEASE reply is preceded by a write of the id
//     table (nodeid -> id, fh -> nodeid) to STATEDIR/backing-ids.json; a
//     successor of the same connection adopts it and reuses the ids, so a
//     reopen of a file still open through an old id gets the same id. A
//     crash between a BACKING_OPEN and that write leaks one id. Run every
//     generation with it.
//
// # Control socket (STATEDIR/daemon.sock)
//
// JSON lines, one request object per line answered by one response object
// per line (see ctl.Request, ctl.Response). Operations: "status"
// (ctl.Status: generation, pid, serving, passthrough negotiated, plain_io,
// id policy, backing ids held with path and refs, recovery
// {strategy, errno, detail, closed, adopted}, resend errno, requests served
// and held by opcode, unknown releases); "next-open-id" {path, id} (the next
// OPEN of path answers FOPEN_PASSTHROUGH with that id: a foreign, stale or
// made-up one); "hold" {opcode} (read requests of that opcode and leave them
// unanswered) and "release-held" {opcode or none for all} (answer them);
// "backing-open" {path} (register that backing file on the daemon's fd,
// returns id or errno) and "backing-close" {id} (returns errno). Kernel
// refusals come back as errno names ("ENOENT") with ok true. The keeper's
// socket offers "status" and "dev-fd" (a duplicate of the /dev/fuse fd,
// see ctl.DevFuseFD) besides the takeover protocol.
//
// # State directory
//
// keeper.sock, daemon.sock, keeper.lock (one keeper per directory),
// keeper.json (ctl.KeeperInfo, kept after a keeper dies so that cleanup
// finds the mount), init.bin (the raw FUSE_INIT request), backing-ids.json
// (adopt only).
//
// # Pitfalls for callers
//
// Closing a file opened on the mount sends FLUSH, and so does every
// fork+exec of a process holding such a file (the exec closes it): with no
// daemon serving, that blocks. A process that holds files open across a
// crash must start the successor before the crash (--standby) or from a
// process holding none. Files opened with passthrough stay readable while
// no daemon runs. The mount's fstype (fuse.<subtype>), extra mount options
// and the backing filesystem (a small dedicated tmpfs makes leaks
// observable) are the caller's choice.
package fusetestd
