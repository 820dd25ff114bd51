package vmtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"golang.org/x/sys/unix"

	"fusevm/events"
)

// ErrNotRunning is returned by Send when the VM is gone or its event port
// never connected.
var ErrNotRunning = errors.New("vmtest: vm is not running")

// Grace periods of the shutdown sequence.
const (
	quitGrace    = 2 * time.Second // QMP quit (or SIGTERM) before SIGKILL
	drainTimeout = 2 * time.Second // waiting for pipes and sockets to close
	qmpRetry     = 20 * time.Millisecond
	maxConsole   = 64 << 20
	stderrTail   = 8 << 10
)

// VM is a running QEMU guest. Its methods are safe for concurrent use.
type VM struct {
	cfg     *config
	baseDir string
	ownBase bool // baseDir was created by Start
	start   time.Time
	console *consoleSink

	evIn  chan events.Event
	evOut chan events.Event

	mu      sync.Mutex
	cur     *attempt
	started chan struct{} // closed once cur is first set
	pids    []int         // every QEMU pid started, for tests

	kill     chan struct{}
	killOnce sync.Once
	done     chan struct{}
	result   *Result
}

// Start launches QEMU as configured by opts and supervises it in the
// background until it exits. Cancelling ctx stops the VM (Result.Exit is
// Killed). The caller must eventually call Wait.
func Start(ctx context.Context, opts ...Option) (*VM, error) {
	c := newConfig(opts)
	if err := c.validate(); err != nil {
		return nil, err
	}
	if c.interactive {
		return nil, errors.New("vmtest: an interactive console (WithInteractive) is for RunInteractive, not Start")
	}
	for _, p := range []string{c.kernel, c.initramfs} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("vmtest: %w", err)
		}
	}
	if _, err := exec.LookPath(c.qemu); err != nil {
		return nil, fmt.Errorf("vmtest: %s not found: install Debian's qemu-system-x86 package (apt-get install -y qemu-system-x86)", c.qemu)
	}
	vm := &VM{
		cfg:     c,
		start:   time.Now(),
		evIn:    make(chan events.Event),
		evOut:   make(chan events.Event),
		started: make(chan struct{}),
		kill:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if c.workDir == "" {
		d, err := os.MkdirTemp("", "fusevm-vm-")
		if err != nil {
			return nil, fmt.Errorf("vmtest: work dir: %w", err)
		}
		vm.baseDir, vm.ownBase = d, true
	} else {
		if err := os.MkdirAll(c.workDir, 0o755); err != nil {
			return nil, fmt.Errorf("vmtest: work dir: %w", err)
		}
		vm.baseDir = c.workDir
	}
	sink, err := newConsoleSink(c.consoleLog, c.consoleStream)
	if err != nil {
		vm.removeBase()
		return nil, err
	}
	vm.console = sink
	go forwardEvents(vm.evIn, vm.evOut)
	go vm.run(ctx)
	return vm, nil
}

// Events returns the guest's events in arrival order. The channel is closed
// after the last event once QEMU is gone. Events are queued without bound,
// so a slow reader never stalls the guest; Wait does not need them drained.
func (vm *VM) Events() <-chan events.Event { return vm.evOut }

// Send writes v as one JSON line to the guest on the event port (the host
// sends an events.Plan after the agent's hello). It waits until QEMU has
// connected the port. A value sent before the hello may be lost if a KVM
// probe falls back to TCG.
func (vm *VM) Send(v any) error {
	select {
	case <-vm.started:
	case <-vm.done:
		return ErrNotRunning
	}
	vm.mu.Lock()
	a := vm.cur
	vm.mu.Unlock()
	select {
	case <-a.evReady:
	case <-vm.done:
		return ErrNotRunning
	}
	a.mu.Lock()
	w := a.evW
	a.mu.Unlock()
	if w == nil {
		return ErrNotRunning
	}
	if err := w.Write(v); err != nil {
		return fmt.Errorf("vmtest: send: %w", err)
	}
	return nil
}

// Wait blocks until QEMU has exited and every process, socket and goroutine
// of the VM is cleaned up, and returns the Result. It may be called more
// than once.
func (vm *VM) Wait() *Result {
	<-vm.done
	return vm.result
}

// Kill stops the VM now: QMP quit, then SIGKILL to QEMU's process group
// after 2 s. It does not wait; call Wait for the Result. Idempotent.
func (vm *VM) Kill() { vm.killOnce.Do(func() { close(vm.kill) }) }

func (vm *VM) removeBase() {
	if vm.ownBase {
		os.RemoveAll(vm.baseDir)
	}
}

// run is the supervisor: it chooses the accelerator, runs QEMU (twice when
// a KVM probe fails) and publishes the Result.
func (vm *VM) run(ctx context.Context) {
	res := &Result{ConsoleLog: vm.cfg.consoleLog}
	defer func() {
		close(vm.evIn)
		vm.removeBase()
		res.Console, res.ConsoleTruncated = vm.console.close()
		res.Wall = time.Since(vm.start)
		vm.result = res
		close(vm.done)
	}()

	ch := vm.chooseAccel(ctx)
	res.Accel, res.AccelNote = ch.accel, ch.note
	o, info := vm.runAttempt(ctx, ch.accel, ch.probe)

	if ch.probe {
		switch {
		case info.sawOutput:
			res.AccelNote = "kvm: probe saw console output"
			if err := writeProbe(vm.cfg.probeCache, ch.key, probeEntry{KVM: kvmWorks, Checked: time.Now()}); err != nil {
				res.AccelNote += "; " + err.Error()
			}
		case info.probeSilent || (o.stop == 0 && o.waitErr != nil):
			// KVM hung (or QEMU refused it): run again under TCG. The
			// verdict "broken" is only recorded once TCG shows the kernel
			// does print to the console, so a silent kernel is not blamed
			// on KVM.
			why := fmt.Sprintf("kvm probe: no console output within %v", vm.cfg.kvmProbe)
			if !info.probeSilent {
				why = "kvm probe: qemu failed under kvm: " + lastLine(info.stderr)
			}
			res.Accel, res.AccelNote = AccelTCG, why+"; fell back to tcg"
			o, info = vm.runAttempt(ctx, AccelTCG, false)
			if info.sawOutput && ch.keyOK {
				if err := writeProbe(vm.cfg.probeCache, ch.key, probeEntry{KVM: kvmBroken, Checked: time.Now(), Detail: why}); err != nil {
					res.AccelNote += "; " + err.Error()
				}
			}
		}
	}
	o.consoleEnd = vm.console.lastWords()
	res.Exit, res.Err = classify(o)
	res.ShutdownReason = o.shutdownReason
	res.BootToHello = info.bootToHello
	res.QEMUStderr = info.stderr
	res.Argv, res.Cmdline = info.argv, vm.cfg.cmdline()
}

// accelChoice is the outcome of chooseAccel.
type accelChoice struct {
	accel Accel
	note  string
	probe bool // run KVM as a probe: fall back to TCG if it stays silent
	key   hostKey
	keyOK bool
}

func (vm *VM) chooseAccel(ctx context.Context) accelChoice { return vm.cfg.chooseAccel(ctx) }

func (c *config) chooseAccel(ctx context.Context) accelChoice {
	switch c.accel {
	case AccelKVM:
		return accelChoice{accel: AccelKVM, note: "kvm: requested"}
	case AccelTCG:
		return accelChoice{accel: AccelTCG, note: "tcg: requested"}
	}
	if err := c.kvmUsable(); err != nil {
		return accelChoice{accel: AccelTCG, note: "tcg: /dev/kvm unusable: " + err.Error()}
	}
	key, err := currentHostKey(ctx, c.qemu)
	if err != nil {
		return accelChoice{accel: AccelTCG, note: "tcg: cannot identify host for the kvm probe: " + err.Error()}
	}
	e, ok, err := readProbe(c.probeCache, key)
	note := "kvm: probing (no cached answer)"
	if err != nil {
		note = "kvm: probing (" + err.Error() + ")"
	}
	if ok {
		if e.KVM == kvmWorks {
			return accelChoice{accel: AccelKVM, note: "kvm: boots on this host (probe cache)"}
		}
		return accelChoice{accel: AccelTCG, note: fmt.Sprintf("tcg: kvm does not boot on this host (probe cache, %s)", e.Checked.Format(time.DateOnly))}
	}
	return accelChoice{accel: AccelKVM, note: note, probe: true, key: key, keyOK: true}
}

// attempt is one QEMU process and its plumbing.
type attempt struct {
	vm     *VM
	accel  Accel
	cmd    *exec.Cmd
	exited chan struct{} // closed after cmd.Wait returned

	evLn    net.Listener
	evReady chan struct{} // closed when the event port connected (or never will)
	evDone  chan struct{} // event reader finished
	qmpDone chan struct{} // QMP connector and event drain finished

	activity chan struct{}  // console or event output (capacity 1)
	firstOut chan struct{}  // closed at the first console byte
	hello    chan time.Time // first events.Hello (capacity 1)

	mu             sync.Mutex
	evConn         net.Conn
	evW            *events.Writer
	mon            *qmp.SocketMonitor
	shutdownReason string
	panicked       bool
	waitErr        error
}

// attemptInfo is what run needs from an attempt besides its outcome.
type attemptInfo struct {
	sawOutput   bool
	probeSilent bool
	bootToHello time.Duration
	stderr      string
	argv        []string // QEMU's command line
}

// runAttempt starts QEMU under accel and supervises it until it exits and
// its plumbing is torn down.
func (vm *VM) runAttempt(ctx context.Context, accel Accel, probe bool) (o outcome, info attemptInfo) {
	c := vm.cfg
	t := c.effectiveTimeouts(accel)
	fail := func(err error) (outcome, attemptInfo) {
		return outcome{stop: QEMUFailed, stopErr: err}, info
	}
	dir, err := os.MkdirTemp(vm.baseDir, "vm-")
	if err != nil {
		return fail(fmt.Errorf("vmtest: socket dir: %w", err))
	}
	defer os.RemoveAll(dir)
	argv, err := c.argv(accel, dir)
	if err != nil {
		return fail(err)
	}
	info.argv = argv
	evLn, err := net.Listen("unix", filepath.Join(dir, eventSocketName))
	if err != nil {
		return fail(fmt.Errorf("vmtest: event socket: %w", err))
	}
	a := &attempt{
		vm:       vm,
		accel:    accel,
		exited:   make(chan struct{}),
		evLn:     evLn,
		evReady:  make(chan struct{}),
		evDone:   make(chan struct{}),
		qmpDone:  make(chan struct{}),
		activity: make(chan struct{}, 1),
		firstOut: make(chan struct{}),
		hello:    make(chan time.Time, 1),
	}
	conR, conW, err := os.Pipe()
	if err != nil {
		evLn.Close()
		return fail(fmt.Errorf("vmtest: console pipe: %w", err))
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		evLn.Close()
		conR.Close()
		conW.Close()
		return fail(fmt.Errorf("vmtest: stderr pipe: %w", err))
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = conW, errW
	// Own process group, so the whole group can be killed; SIGKILL if we die.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	a.cmd = cmd
	started := time.Now()
	err = cmd.Start()
	conW.Close()
	errW.Close()
	if err != nil {
		evLn.Close()
		conR.Close()
		errR.Close()
		return fail(fmt.Errorf("vmtest: start %s: %w", argv[0], err))
	}
	vm.mu.Lock()
	first := vm.cur == nil
	vm.cur = a
	vm.pids = append(vm.pids, cmd.Process.Pid)
	vm.mu.Unlock()
	if first {
		close(vm.started)
	}

	conDone := make(chan struct{})
	tail := &tailBuffer{max: stderrTail}
	errDone := make(chan struct{})
	go func() {
		err := cmd.Wait()
		a.mu.Lock()
		a.waitErr = err
		a.mu.Unlock()
		close(a.exited)
	}()
	go func() { defer close(conDone); a.readConsole(conR) }()
	go func() { defer close(errDone); io.Copy(tail, errR) }()
	go a.serveEvents()
	go a.connectQMP(filepath.Join(dir, qmpSocketName))

	// Supervise.
	timer := func(d time.Duration) (*time.Timer, <-chan time.Time) {
		if d <= 0 {
			return nil, nil
		}
		tm := time.NewTimer(d)
		return tm, tm.C
	}
	bootT, bootC := timer(t.Boot)
	silenceT, silenceC := timer(t.Silence)
	var overallT *time.Timer
	var overallC <-chan time.Time
	if t.Overall > 0 {
		overallT, overallC = timer(max(time.Until(vm.start.Add(t.Overall)), time.Millisecond))
	}
	var probeC <-chan time.Time
	if probe {
		var probeT *time.Timer
		probeT, probeC = timer(c.kvmProbe)
		defer probeT.Stop()
	}
	for _, tm := range []*time.Timer{bootT, silenceT, overallT} {
		if tm != nil {
			defer tm.Stop()
		}
	}
	var killC <-chan time.Time
	firstOut, killReq, ctxDone := a.firstOut, vm.kill, ctx.Done()
	stopping := false
	stop := func(r ExitReason, err error) {
		if o.stop == 0 {
			o.stop, o.stopErr = r, err
		}
		if stopping {
			return
		}
		stopping = true
		bootC, silenceC, overallC, probeC = nil, nil, nil, nil
		go a.quit()
		killC = time.After(quitGrace)
	}
loop:
	for {
		select {
		case <-a.exited:
			break loop
		case <-a.activity:
			if silenceT != nil && !stopping {
				silenceT.Reset(t.Silence)
			}
		case at := <-a.hello:
			info.bootToHello = at.Sub(started)
			bootC = nil
		case <-firstOut:
			firstOut, probeC = nil, nil
			info.sawOutput = true
		case <-probeC:
			info.probeSilent = true
			stop(Killed, fmt.Errorf("kvm probe: no console output within %v", c.kvmProbe))
		case <-bootC:
			if probe && !info.sawOutput {
				// Still silent under KVM: the probe's verdict, not the guest's.
				info.probeSilent = true
			}
			stop(BootTimeout, fmt.Errorf("no hello from the guest agent within %v (%v)", t.Boot, accel))
		case <-silenceC:
			if probe && !info.sawOutput {
				info.probeSilent = true
			}
			stop(SilenceTimeout, fmt.Errorf("no console output and no event for %v (%v)", t.Silence, accel))
		case <-overallC:
			stop(OverallTimeout, fmt.Errorf("run exceeded %v (%v)", t.Overall, accel))
		case <-killReq:
			killReq = nil
			stop(Killed, errors.New("killed"))
		case <-ctxDone:
			ctxDone = nil
			stop(Killed, ctx.Err())
		case <-killC:
			killC = nil
			a.killGroup()
		}
	}

	// QEMU is gone: take down anything left in its group, then collect the
	// plumbing. Every wait is bounded.
	a.killGroup()
	waitOrClose(conDone, conR)
	select {
	case <-a.firstOut:
		info.sawOutput = true
	default:
	}
	waitOrClose(errDone, errR)
	info.stderr = tail.String()
	a.closeQMP()
	a.closeEvents()

	a.mu.Lock()
	o.shutdownReason, o.panicked, o.waitErr = a.shutdownReason, a.panicked, a.waitErr
	a.mu.Unlock()
	o.stderrTail = info.stderr
	return o, info
}

// waitOrClose waits for done; if it takes longer than drainTimeout, c is
// closed to unblock the reader, which is then awaited.
func waitOrClose(done <-chan struct{}, c io.Closer) {
	select {
	case <-done:
	case <-time.After(drainTimeout):
		c.Close()
		<-done
	}
	c.Close()
}

// killGroup sends SIGKILL to QEMU's process group.
func (a *attempt) killGroup() {
	_ = unix.Kill(-a.cmd.Process.Pid, unix.SIGKILL)
}

// quit asks QEMU to stop: QMP quit if the monitor is up, SIGTERM otherwise
// or if quit fails. The caller escalates to SIGKILL after quitGrace.
func (a *attempt) quit() {
	a.mu.Lock()
	mon := a.mon
	a.mu.Unlock()
	if mon != nil {
		done := make(chan error, 1)
		go func() {
			_, err := mon.Run([]byte("{\"execute\":\"quit\"}\n"))
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				return
			}
		case <-a.exited:
			return
		case <-time.After(quitGrace / 2):
		}
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
}

// signal notes output for the silence timer.
func (a *attempt) signal() {
	select {
	case a.activity <- struct{}{}:
	default:
	}
}

// readConsole copies QEMU's stdout (the serial console) into the sink.
func (a *attempt) readConsole(r io.Reader) {
	buf := make([]byte, 32<<10)
	first := true
	for {
		n, err := r.Read(buf)
		if n > 0 {
			a.vm.console.write(buf[:n])
			if first {
				first = false
				close(a.firstOut)
			}
			a.signal()
		}
		if err != nil {
			return
		}
	}
}

// serveEvents accepts QEMU's connection on the event socket and reads the
// guest's JSON lines until it closes.
func (a *attempt) serveEvents() {
	defer close(a.evDone)
	c, err := a.evLn.Accept()
	if err != nil {
		close(a.evReady)
		return
	}
	a.mu.Lock()
	a.evConn, a.evW = c, events.NewWriter(c)
	a.mu.Unlock()
	close(a.evReady)
	r := events.NewReader(c)
	helloSeen := false
	for {
		var e events.Event
		err := r.Read(&e)
		if err != nil {
			var se *json.SyntaxError
			var te *json.UnmarshalTypeError
			if errors.As(err, &se) || errors.As(err, &te) {
				// One garbled line is reported, not fatal.
				a.signal()
				a.vm.evIn <- events.Event{Time: time.Now(), Kind: events.Log, Detail: "vmtest: " + err.Error()}
				continue
			}
			return
		}
		a.signal()
		if e.Kind == events.Hello && !helloSeen {
			helloSeen = true
			a.hello <- time.Now()
		}
		a.vm.evIn <- e
	}
}

// closeEvents tears the event socket down once QEMU is gone.
func (a *attempt) closeEvents() {
	a.evLn.Close() // unblocks Accept if QEMU never connected
	a.mu.Lock()
	c := a.evConn
	a.mu.Unlock()
	select {
	case <-a.evDone:
	case <-time.After(drainTimeout):
		if c != nil {
			c.Close()
		}
		<-a.evDone
	}
	a.mu.Lock()
	if a.evConn != nil {
		a.evConn.Close()
	}
	a.mu.Unlock()
}

// connectQMP dials QEMU's QMP socket until it appears, completes the
// handshake and drains the event stream, recording SHUTDOWN and
// GUEST_PANICKED. The stream is drained in full: it is unbuffered and
// shares its reader with command replies.
func (a *attempt) connectQMP(path string) {
	defer close(a.qmpDone)
	var mon *qmp.SocketMonitor
	for mon == nil {
		select {
		case <-a.exited:
			return
		default:
		}
		m, err := qmp.NewSocketMonitor("unix", path, time.Second)
		if err == nil {
			// Register as an event listener before the handshake: the
			// monitor drops events that arrive while nobody listens, and
			// Events() can only hand out the channel after Connect. The
			// channel returned here is nil and unused.
			m.Events(context.Background())
			if err = m.Connect(); err == nil {
				mon = m
				break
			}
		}
		select {
		case <-a.exited:
			return
		case <-time.After(qmpRetry):
		}
	}
	evs, err := mon.Events(context.Background())
	if err != nil {
		mon.Disconnect()
		return
	}
	a.mu.Lock()
	a.mon = mon
	a.mu.Unlock()
	for ev := range evs {
		switch ev.Event {
		case "SHUTDOWN":
			reason, _ := ev.Data["reason"].(string)
			a.mu.Lock()
			a.shutdownReason = reason
			a.mu.Unlock()
		case "GUEST_PANICKED":
			a.mu.Lock()
			a.panicked = true
			a.mu.Unlock()
		}
	}
}

// closeQMP waits for the QMP stream to end (QEMU closes it on exit, after
// its last events) unless SHUTDOWN was already seen, then disconnects.
func (a *attempt) closeQMP() {
	a.mu.Lock()
	seen := a.shutdownReason != ""
	a.mu.Unlock()
	if !seen {
		select {
		case <-a.qmpDone:
		case <-time.After(drainTimeout):
		}
	}
	a.mu.Lock()
	mon := a.mon
	a.mu.Unlock()
	if mon != nil {
		// Disconnect drains pending replies; it cannot block once the
		// connection is closed.
		mon.Disconnect()
	}
	<-a.qmpDone
}

// forwardEvents moves events from in to out through an unbounded queue and
// closes out after in is closed and the queue is empty.
func forwardEvents(in <-chan events.Event, out chan<- events.Event) {
	defer close(out)
	var q []events.Event
	for in != nil || len(q) > 0 {
		var send chan<- events.Event
		var next events.Event
		if len(q) > 0 {
			send, next = out, q[0]
		}
		select {
		case e, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			q = append(q, e)
		case send <- next:
			q = q[1:]
		}
	}
}

// consoleSink collects the serial console in memory, in the log file and on
// the stream.
type consoleSink struct {
	mu        sync.Mutex
	buf       []byte
	truncated bool
	file      *os.File
	stream    io.Writer
}

func newConsoleSink(path string, stream io.Writer) (*consoleSink, error) {
	s := &consoleSink{stream: stream}
	if path != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("vmtest: console log: %w", err)
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("vmtest: console log: %w", err)
		}
		s.file = f
	}
	return s, nil
}

func (s *consoleSink) write(p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if room := maxConsole - len(s.buf); room >= len(p) {
		s.buf = append(s.buf, p...)
	} else {
		s.buf = append(s.buf, p[:max(room, 0)]...)
		s.truncated = true
	}
	if s.file != nil {
		s.file.Write(p)
	}
	if s.stream != nil {
		s.stream.Write(p)
	}
}

func (s *consoleSink) lastWords() consoleEnd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lastWords(s.buf)
}

func (s *consoleSink) close() ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
	return s.buf, s.truncated
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
