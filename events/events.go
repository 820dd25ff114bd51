// Package events is the schema of the guest<->host channel: JSON lines on a
// virtio-serial port, separate from the kernel console. The guest agent sends
// Events; the host sends one Plan after the agent's hello.
//
// This package is a leaf shared by host and guest programs: it imports
// nothing of the project.
package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// PortName is the virtio-serial port name the host exposes and the guest
// looks up in /sys/class/virtio-ports/*/name.
const PortName = "fusevm.events"

// ModulesFile is where the guest image lists the kernel modules the agent
// loads before anything else (one image path per line, in order); absent
// when the kernel has everything built in.
const ModulesFile = "etc/fusevm/modules"

// Kind names what an Event reports.
type Kind string

// Event kinds, in the order a healthy run emits them.
const (
	// Hello: the agent is up (Detail carries `uname -r`). Ends the boot timeout.
	Hello Kind = "hello"
	// ScenarioStart: a scenario begins.
	ScenarioStart Kind = "scenario_start"
	// Step: one step of a scenario finished (Detail says what it observed).
	Step Kind = "step"
	// ScenarioEnd: a scenario finished with Verdict.
	ScenarioEnd Kind = "scenario_end"
	// Log: free-form agent output worth keeping.
	Log Kind = "log"
	// Done: every scenario of the plan ran; the agent powers off next.
	Done Kind = "done"
)

// Event is one guest->host message.
type Event struct {
	Time     time.Time `json:"time"`
	Kind     Kind      `json:"kind"`
	Scenario string    `json:"scenario,omitempty"`
	// Line is the script line of a Step (1-based), 0 otherwise.
	Line int `json:"line,omitempty"`
	// Verdict is set on ScenarioEnd: PASS, FAIL or SKIP as the guest saw it.
	// The host may still turn it into CRASH (a splat) or HANG.
	Verdict string `json:"verdict,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// Plan is the host->guest message: what to run in this VM.
type Plan struct {
	// Claims are the behaviours the kernel's patch series claims; scripts
	// pick conditional outcomes by them.
	Claims []string `json:"claims"`
	// Params are per-kernel settings scripts may need, e.g.
	// "inode_cache_bit" (the bit v1's FOPEN_PASSTHROUGH_INODE_CACHE uses on
	// this kernel base).
	Params    map[string]string `json:"params,omitempty"`
	Scenarios []ScenarioSpec    `json:"scenarios"`
}

// ScenarioSpec carries one scenario script, already validated on the host.
type ScenarioSpec struct {
	Name   string `json:"name"`
	Script string `json:"script"`
}

// Writer serialises values as JSON lines; safe for concurrent use.
type Writer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Writer{enc: enc}
}

// Write sends one value as one line.
func (w *Writer) Write(v any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(v)
}

// Reader decodes JSON lines one at a time.
type Reader struct{ sc *bufio.Scanner }

// NewReader returns a Reader on r. Lines may be up to 1 MiB.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	return &Reader{sc: sc}
}

// Read decodes the next line into v. It returns io.EOF at the end.
func (r *Reader) Read(v any) error {
	for r.sc.Scan() {
		line := r.sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if err := json.Unmarshal(line, v); err != nil {
			return fmt.Errorf("events: bad line %q: %w", truncate(line, 80), err)
		}
		return nil
	}
	if err := r.sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
