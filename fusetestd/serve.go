package fusetestd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
	"fusevm/internal/failnth"
)

// Recovery strategies, the values of `serve --recovery`.
const (
	RecoveryNone          = "none"
	RecoveryCloseAll      = "close-all"
	RecoveryCloseMinusOne = "close-minus-one"
	RecoveryScanClose     = "scan-close"
	RecoveryAdopt         = "adopt"
)

// Recoveries lists the recovery strategies.
var Recoveries = []string{RecoveryNone, RecoveryCloseAll, RecoveryCloseMinusOne, RecoveryScanClose, RecoveryAdopt}

// ServeConfig is what `fusetestd serve` takes.
type ServeConfig struct {
	State   string
	Backing string
	// Recovery is one of Recoveries.
	Recovery string
	// IDPerOpen registers a fresh backing id for every OPEN instead of one
	// per inode.
	IDPerOpen bool
	// InodeCacheBit, when not negative, is the bit number of
	// FOPEN_PASSTHROUGH_INODE_CACHE, set on every passthrough open.
	InodeCacheBit int
	// NoPassthrough answers opens without passthrough even where it was
	// negotiated; the daemon serves READ and WRITE itself.
	NoPassthrough bool
	// NoProbe registers no probe backing file at start: the generation
	// learns whether passthrough is on from the INIT reply alone, so that
	// it takes no id of the connection's id counter (the first id
	// registered on a fresh connection is then 1), and it cannot tell
	// before an OPEN that the kernel refuses it BACKING_OPEN. Recovery
	// scan-close, which scans below the probe id, reports ENOTSUP.
	NoProbe bool
	// InitFailNth, if positive, makes the Nth slab allocation of the
	// INIT reply's write fail (internal/failnth); only the generation
	// that answers INIT may have it.
	InitFailNth int
	// Readers is the number of goroutines reading /dev/fuse.
	Readers int
	// TTL is the entry and attribute timeout given to the kernel.
	TTL time.Duration
	// Debug logs every request and reply.
	Debug bool
	// Standby waits for the generation holding the connection to end
	// instead of failing when one does.
	Standby bool
	// Ready, if set, receives one line once the generation serves and,
	// with Standby, one line before, once the takeover request is queued.
	Ready io.Writer
	// Log receives the generation's log, prefixed with its generation
	// and pid; nil discards it.
	Log *log.Logger
}

// Buffer sizes: a /dev/fuse read must hold a WRITE of maxWrite bytes with
// its headers; a reply, a READ of as much.
const (
	maxWrite    = 128 * 1024
	readBufSize = maxWrite + fuseabi.MinReadBuffer
	outBufSize  = maxWrite + 4096
)

// daemon is one generation.
type daemon struct {
	fuse.RawFileSystem // ENOSYS for the operations fs.go does not implement

	cfg              ServeConfig
	log              *log.Logger
	lease            *ctl.Lease
	dev              int
	backing          string
	rootIno, rootDev uint64
	ps               *fuse.ProtocolServer
	passthrough      bool   // negotiated at INIT
	plainIO          bool   // opens answered without passthrough
	inodeCacheFlag   uint32 // added to passthrough opens

	mu              sync.Mutex
	paths           map[uint64]string // nodeid -> backing path, relative
	handles         map[uint64]*handle
	dirs            map[uint64][]fuse.DirEntry
	inodes          map[uint64]*inodeID
	ctlIDs          map[int32]string // ids registered by OpBackingOpen
	forced          map[string]int32 // OpNextOpenID orders
	nextFh          uint64
	idsOpened       int
	unknownReleases int
	recovery        ctl.Recovery
	resendErrno     string
	serving         bool
	served          map[fuseabi.Opcode]uint64
	holding         map[fuseabi.Opcode]bool
	held            [][]byte
}

// RunServe runs one daemon generation: it takes the connection from the
// keeper, restores the negotiated state, applies the recovery strategy,
// has the kernel resend what the dead generation had read, and serves until
// the connection ends (exit status 0) or a signal arrives.
func RunServe(cfg ServeConfig) error {
	if !slices.Contains(Recoveries, cfg.Recovery) {
		return fmt.Errorf("unknown recovery strategy %q (want one of %v)", cfg.Recovery, Recoveries)
	}
	if cfg.Readers < 1 {
		return fmt.Errorf("--readers must be at least 1, got %d", cfg.Readers)
	}
	backing, err := filepath.Abs(cfg.Backing)
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return fmt.Errorf("backing directory %s: %w", backing, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return fmt.Errorf("backing directory %s: not a directory", backing)
	}
	unix.Umask(0) // the kernel applied the caller's umask already

	var queued func()
	if cfg.Standby && cfg.Ready != nil {
		queued = func() { fmt.Fprintf(cfg.Ready, "standby pid=%d\n", os.Getpid()) }
	}
	lease, err := ctl.TakeOver(cfg.State, cfg.Standby, queued)
	if err != nil {
		return err
	}
	w, flags := io.Discard, 0
	if cfg.Log != nil {
		w, flags = cfg.Log.Writer(), cfg.Log.Flags()
	}
	cfg.Log = log.New(w, fmt.Sprintf("fusetestd serve[gen %d pid %d]: ", lease.Generation, os.Getpid()), flags)
	d := &daemon{
		RawFileSystem: fuse.NewDefaultRawFileSystem(),
		cfg:           cfg,
		log:           cfg.Log,
		lease:         lease,
		dev:           lease.DevFD,
		backing:       backing,
		rootIno:       st.Ino,
		rootDev:       st.Dev,
		paths:         map[uint64]string{},
		handles:       map[uint64]*handle{},
		dirs:          map[uint64][]fuse.DirEntry{},
		inodes:        map[uint64]*inodeID{},
		ctlIDs:        map[int32]string{},
		forced:        map[string]int32{},
		served:        map[fuseabi.Opcode]uint64{},
		holding:       map[fuseabi.Opcode]bool{},
		resendErrno:   "-",
	}
	if err := d.restoreInit(); err != nil {
		return err
	}
	probeID, err := d.checkPassthrough()
	if err != nil {
		return err
	}
	d.recovery = d.recover(probeID)
	d.log.Printf("recovery %s: errno %q: %s", d.recovery.Strategy, d.recovery.Errno, d.recovery.Detail)
	if lease.InitAnswered {
		// Requests the dead generation read but never answered are
		// queued again; this must precede our first read.
		d.resendErrno = errnoName(fuseabi.WriteNotifyResend(d.dev))
	}
	ctlLn, err := d.listenControl()
	if err != nil {
		return err
	}
	defer ctlLn.Close()

	ended := make(chan error, cfg.Readers)
	for range cfg.Readers {
		go func() { ended <- d.readLoop() }()
	}
	d.mu.Lock()
	d.serving = true
	d.mu.Unlock()
	if cfg.Ready != nil {
		fmt.Fprintf(cfg.Ready, "serving generation=%d pid=%d\n", lease.Generation, os.Getpid())
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case err := <-ended:
		if err == nil {
			d.log.Printf("connection ended")
		}
		return err
	case s := <-sigs:
		d.log.Printf("stopping on %v", s)
		return nil
	}
}

// restoreInit feeds the saved FUSE_INIT request to a fresh ProtocolServer.
// The generation that finds INIT unanswered writes the reply; later ones
// discard it: the kernel negotiated once, they only restore the settings.
func (d *daemon) restoreInit() error {
	opts := &fuse.MountOptions{
		MaxWrite:           maxWrite,
		MaxStackDepth:      1,
		DisableReadDirPlus: true,
		Debug:              d.cfg.Debug,
		Logger:             d.log,
	}
	if d.lease.NoPassthrough {
		opts.DisabledCapabilities |= fuse.CAP_PASSTHROUGH
	}
	d.ps = fuse.NewProtocolServer(d, opts)
	out := make([]byte, outBufSize)
	n, st := d.ps.HandleRequest([][]byte{d.lease.Init}, [][]byte{out})
	if !st.Ok() || n < fuseabi.OutHeaderSize+40 {
		return fmt.Errorf("saved FUSE_INIT request rejected: %v", st)
	}
	e := binary.NativeEndian
	if status := int32(e.Uint32(out[4:])); status != 0 {
		return fmt.Errorf("FUSE_INIT refused: %v", syscall.Errno(-status))
	}
	body := out[fuseabi.OutHeaderSize:n]
	flags := uint64(e.Uint32(body[12:]))
	if flags&fuseabi.InitExt != 0 {
		flags |= uint64(e.Uint32(body[32:])) << 32
	}
	d.passthrough = flags&fuseabi.InitPassthrough != 0
	d.plainIO = !d.passthrough || d.cfg.NoPassthrough
	if d.cfg.InodeCacheBit >= 0 {
		d.inodeCacheFlag = 1 << d.cfg.InodeCacheBit
	}
	if d.lease.InitAnswered {
		if d.cfg.InitFailNth > 0 {
			return errors.New("--init-fail-nth: INIT was answered by an earlier generation")
		}
		return nil
	}
	write := func() error {
		_, err := unix.Write(d.dev, out[:n])
		return err
	}
	if d.cfg.InitFailNth > 0 {
		if err := failnth.Setup(); err != nil {
			return err
		}
		injected, err := failnth.Do(d.cfg.InitFailNth, write)
		if err != nil {
			return fmt.Errorf("write FUSE_INIT reply: %w", err)
		}
		d.log.Printf("INIT reply written with slab allocation %d failing: reached %v", d.cfg.InitFailNth, injected)
	} else if err := write(); err != nil {
		return fmt.Errorf("write FUSE_INIT reply: %w", err)
	}
	return d.lease.ReportInitAnswered()
}

// checkPassthrough registers a probe backing file (a memfd) to learn whether
// the kernel lets this process use passthrough, and returns its id, already
// closed again, or 0 when passthrough is off or with NoProbe.
func (d *daemon) checkPassthrough() (int32, error) {
	if d.plainIO || d.cfg.NoProbe {
		return 0, nil
	}
	fd, err := unix.MemfdCreate("fusetestd-probe", unix.MFD_CLOEXEC)
	if err != nil {
		return 0, fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(fd)
	id, err := fuseabi.BackingOpen(d.dev, fd)
	switch {
	case errors.Is(err, unix.EPERM):
		return 0, errors.New("passthrough refused: FUSE_DEV_IOC_BACKING_OPEN: operation not permitted (needs CAP_SYS_ADMIN); --no-passthrough serves without it")
	case err != nil:
		return 0, fmt.Errorf("passthrough refused: FUSE_DEV_IOC_BACKING_OPEN: %w", err)
	}
	if err := fuseabi.BackingClose(d.dev, id); err != nil {
		return 0, fmt.Errorf("close probe backing id %d: %w", id, err)
	}
	return id, nil
}

// readLoop reads and answers requests until the connection ends.
func (d *daemon) readLoop() error {
	in := make([]byte, readBufSize)
	out := make([]byte, outBufSize)
	for {
		n, err := unix.Read(d.dev, in)
		switch err {
		case nil:
		case unix.EINTR, unix.EAGAIN, unix.ENOENT:
			continue
		case unix.ENODEV: // unmounted or aborted
			return nil
		default:
			return fmt.Errorf("read /dev/fuse: %w", err)
		}
		req := in[:n]
		h, err := fuseabi.ParseInHeader(req)
		if err != nil {
			d.log.Print(err)
			continue
		}
		d.mu.Lock()
		hold := d.holding[h.Opcode]
		if hold {
			d.held = append(d.held, append([]byte(nil), req...))
		}
		d.mu.Unlock()
		if !hold {
			d.answer(req, h, out)
		}
	}
}

// answer handles one request and writes its reply.
func (d *daemon) answer(req []byte, h fuseabi.InHeader, out []byte) {
	n, st := d.ps.HandleRequest([][]byte{req}, [][]byte{out})
	if !st.Ok() {
		d.log.Printf("%v request %d not handled: %v", h.Opcode, h.Unique, st)
		n = len(fuseabi.AppendOutHeader(out[:0], fuseabi.OutHeaderSize, -int32(syscall.EIO), h.Unique))
	}
	// Counted before the reply goes out: a client that has its answer
	// and asks for the status must find the request counted.
	d.mu.Lock()
	d.served[h.Opcode]++
	d.mu.Unlock()
	if n > 0 {
		if _, err := unix.Write(d.dev, out[:n]); err != nil && err != unix.ENOENT {
			// ENOENT: the request was interrupted or aborted meanwhile.
			d.log.Printf("reply to %v request %d: %v", h.Opcode, h.Unique, err)
		}
	}
}

// releaseHeld stops holding op (every opcode when all) and answers what was
// held of it.
func (d *daemon) releaseHeld(op fuseabi.Opcode, all bool) int {
	d.mu.Lock()
	var todo, keep [][]byte
	for _, req := range d.held {
		h, _ := fuseabi.ParseInHeader(req)
		if all || h.Opcode == op {
			todo = append(todo, req)
		} else {
			keep = append(keep, req)
		}
	}
	d.held = keep
	if all {
		clear(d.holding)
	} else {
		delete(d.holding, op)
	}
	d.mu.Unlock()
	out := make([]byte, outBufSize)
	for _, req := range todo {
		h, _ := fuseabi.ParseInHeader(req)
		d.answer(req, h, out)
	}
	return len(todo)
}

func errnoName(err error) string {
	if err == nil {
		return ""
	}
	return unix.ErrnoName(errnoOf(err))
}
