package fuseabi

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// ioctl numbers of /dev/fuse (magic 229). x/sys has none of them.
const (
	// IocBackingOpen is FUSE_DEV_IOC_BACKING_OPEN, _IOW(229, 1, struct
	// fuse_backing_map): registers a backing file; the return value is the
	// new backing id. Linux 6.9.
	IocBackingOpen = 0x4010e501
	// IocBackingClose is FUSE_DEV_IOC_BACKING_CLOSE, _IOW(229, 2, uint32):
	// drops the table's reference of one backing id. Linux 6.9. The v1
	// series reads id -1 as "close every id".
	IocBackingClose = 0x4004e502
	// IocBackingCloseAll is FUSE_DEV_IOC_BACKING_CLOSE_ALL, _IO(229, 4), no
	// argument: closes every id of the connection. Only kernels carrying
	// the v2 or v3 close-all series have it; others answer ENOTTY.
	IocBackingCloseAll = 0xe504
)

// BackingMap is struct fuse_backing_map, the argument of IocBackingOpen.
type BackingMap = fuse.BackingMap

// Open reply flags (fuse_open_out.open_flags) and INIT capability bits.
const (
	// OpenPassthrough is FOPEN_PASSTHROUGH: the kernel does the file's I/O
	// on the backing file named by fuse_open_out.backing_id.
	OpenPassthrough = fuse.FOPEN_PASSTHROUGH
	// InodeCacheBitV1 is the bit number v1 of the series gives
	// FOPEN_PASSTHROUGH_INODE_CACHE on its 6.19-rc4 base (and on 6.12). On
	// 7.3 this bit is FOPEN_IO_URING_ZERO_COPY, so a port there uses another
	// free bit, named in its commit message; callers pass the bit in use.
	InodeCacheBitV1 = 8
	// InitPassthrough is FUSE_PASSTHROUGH in the 64-bit INIT flags.
	InitPassthrough = fuse.CAP_PASSTHROUGH
	// InitExt is FUSE_INIT_EXT: fuse_init_{in,out}.flags2 is valid.
	InitExt = fuse.CAP_INIT_EXT
	// NotifyResend is the FUSE_NOTIFY_RESEND notification code.
	NotifyResend = 7
	// MinReadBuffer is FUSE_MIN_READ_BUFFER: the smallest buffer a read of
	// /dev/fuse accepts.
	MinReadBuffer = 8192
	// RootID is FUSE_ROOT_ID, the nodeid of the mount's root.
	RootID = fuse.FUSE_ROOT_ID
)

// InHeaderSize and OutHeaderSize are the sizes of fuse_in_header and
// fuse_out_header (go-fuse's fuse.InHeader and fuse.OutHeader), untyped so
// that they serve as lengths of either type.
const (
	InHeaderSize  = 40
	OutHeaderSize = 16
)

// InHeader is the part of struct fuse_in_header that callers route on.
type InHeader struct {
	Len    uint32
	Opcode Opcode
	Unique uint64
	NodeID uint64
}

// ParseInHeader decodes the header at the start of a request read from
// /dev/fuse.
func ParseInHeader(b []byte) (InHeader, error) {
	if len(b) < InHeaderSize {
		return InHeader{}, fmt.Errorf("fuse request of %d bytes is shorter than its header", len(b))
	}
	var h fuse.InHeader
	copy(raw(&h), b)
	return InHeader{Len: h.Length, Opcode: Opcode(h.Opcode), Unique: h.Unique, NodeID: h.NodeId}, nil
}

// AppendOutHeader appends a fuse_out_header for a reply or notification of
// total length n bytes (header included). status is 0 or a negated errno
// for a reply; for a notification (unique 0) it is the notification code,
// positive (go-fuse's Status values for notifications are negated ones).
func AppendOutHeader(b []byte, n uint32, status int32, unique uint64) []byte {
	return append(b, raw(&fuse.OutHeader{Length: n, Status: status, Unique: unique})...)
}

// raw is the memory of *p, a go-fuse protocol struct: their Go layout is
// the kernel's, and go-fuse itself reads and writes /dev/fuse through them
// so. A message shorter than *p (an older kernel's version of the struct)
// copied into raw(p) of a zero *p leaves the fields it lacks zero.
func raw[T any](p *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), unsafe.Sizeof(*p))
}

// Opcode is a FUSE request opcode (enum fuse_opcode).
type Opcode uint32

// The opcodes, by their uapi names without the FUSE_ prefix.
var opcodeNames = map[Opcode]string{
	1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK",
	6: "SYMLINK", 8: "MKNOD", 9: "MKDIR", 10: "UNLINK", 11: "RMDIR",
	12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ", 16: "WRITE",
	17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR",
	22: "GETXATTR", 23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH",
	26: "INIT", 27: "OPENDIR", 28: "READDIR", 29: "RELEASEDIR",
	30: "FSYNCDIR", 31: "GETLK", 32: "SETLK", 33: "SETLKW", 34: "ACCESS",
	35: "CREATE", 36: "INTERRUPT", 37: "BMAP", 38: "DESTROY", 39: "IOCTL",
	40: "POLL", 41: "NOTIFY_REPLY", 42: "BATCH_FORGET", 43: "FALLOCATE",
	44: "READDIRPLUS", 45: "RENAME2", 46: "LSEEK", 47: "COPY_FILE_RANGE",
	48: "SETUPMAPPING", 49: "REMOVEMAPPING", 50: "SYNCFS", 51: "TMPFILE",
	52: "STATX", 53: "COPY_FILE_RANGE_64",
}

// Opcodes used by name in this project.
const (
	OpLookup      Opcode = 1
	OpForget      Opcode = 2
	OpGetattr     Opcode = 3
	OpOpen        Opcode = 14
	OpRelease     Opcode = 18
	OpFlush       Opcode = 25
	OpInit        Opcode = 26
	OpInterrupt   Opcode = 36
	OpBatchForget Opcode = 42
)

// String returns the uapi name without the FUSE_ prefix ("LOOKUP"), or
// "OP<n>" for an opcode this table does not know.
func (o Opcode) String() string {
	if s, ok := opcodeNames[o]; ok {
		return s
	}
	return "OP" + strconv.FormatUint(uint64(o), 10)
}

// ParseOpcode accepts an opcode name with or without the FUSE_ prefix, in
// any case ("lookup", "FUSE_LOOKUP"), or a decimal number.
func ParseOpcode(s string) (Opcode, error) {
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "FUSE_")
	for op, n := range opcodeNames {
		if n == name {
			return op, nil
		}
	}
	if n, err := strconv.ParseUint(name, 10, 32); err == nil {
		return Opcode(n), nil
	}
	return 0, fmt.Errorf("unknown FUSE opcode %q", s)
}
