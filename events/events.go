// Package events is the schema of the guest<->host channel: JSON lines on a
// virtio-serial port, separate from the kernel console. The guest agent sends
// Events; the host sends one Plan after the agent's hello. After the plan
// and before the first scenario the agent sends one Features event: what
// the running kernel supports of the series' interfaces, which the host
// compares with the claims of the variant it booted.
//
// This package is a leaf shared by host and guest programs: of the project
// it imports only package verdict (a scenario's end carries its verdict).
package events

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"fusevm/verdict"
)

// PortName is the virtio-serial port name the host exposes and the guest
// looks up in /sys/class/virtio-ports/*/name.
const PortName = "fusevm.events"

// ModulesFile is where the guest image lists the kernel modules the agent
// loads before anything else (one image path per line, in order); absent
// when the kernel has everything built in.
const ModulesFile = "etc/fusevm/modules"

// AgentError starts the line the agent writes to the kernel log (so to
// the console) when it stops on an error, an event it could not write
// included, before it powers the VM off; the host quotes that line when a
// VM ends without the agent's Done.
const AgentError = "fusevm: agent error: "

// Kind names what an Event reports.
type Kind string

// Event kinds, in the order a healthy run emits them.
const (
	// Hello: the agent is up (Detail carries `uname -r`). Ends the boot timeout.
	Hello Kind = "hello"
	// Features: what the running kernel supports of the series' interfaces
	// (Features), probed once after the plan arrived and before the first
	// scenario. Sent once per VM.
	Features Kind = "features"
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
	// Verdict is set on ScenarioEnd: PASS, FAIL or HANG as the guest saw
	// it. The host may still turn it into CRASH (a splat), HANG or INFRA.
	Verdict verdict.Verdict `json:"verdict,omitempty"`
	Detail  string          `json:"detail,omitempty"`
	// Features is set on a Features event: one entry per probed feature.
	Features []Feature `json:"features,omitempty"`
}

// Feature is the answer of one probe of the running kernel (package
// fuseabi's Have* probes) for one behaviour a patch series may claim.
type Feature struct {
	// Name is the claim the probe tests (series.toml's claim names):
	// FeatureCloseAll, FeatureCloseMinusOne or FeatureInodeCache.
	Name  string       `json:"name"`
	State FeatureState `json:"state"`
	// Detail says what the probe saw: for Supported and NotSupported an
	// observation ("FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"), for
	// Unknown the error that kept it from telling.
	Detail string `json:"detail,omitempty"`
}

// FeatureState is a probe's answer.
type FeatureState string

// Probe answers.
const (
	Supported    FeatureState = "supported"
	NotSupported FeatureState = "not_supported"
	// Unknown: the probe could not tell (no CAP_SYS_ADMIN, an unexpected
	// error); Detail has the error.
	Unknown FeatureState = "unknown"
)

// The features the agent probes, named by the claim each one tests. The
// claim same_inode_reuse has no probe.
const (
	// FeatureCloseAll: the ioctl FUSE_DEV_IOC_BACKING_CLOSE_ALL (v2, v3).
	FeatureCloseAll = "close_all_ioctl"
	// FeatureCloseMinusOne: FUSE_DEV_IOC_BACKING_CLOSE with id -1 closes
	// every id (v1).
	FeatureCloseMinusOne = "close_all_minus_one"
	// FeatureInodeCache: the open flag FOPEN_PASSTHROUGH_INODE_CACHE (v1),
	// at the bit the plan's Params give as "inode_cache_bit".
	FeatureInodeCache = "inode_cache_flag"
)

// ProbedFeatures are the features the agent reports, in this order.
var ProbedFeatures = []string{FeatureCloseAll, FeatureCloseMinusOne, FeatureInodeCache}

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
