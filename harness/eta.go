package harness

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
	"time"

	"fusevm/internal/atomicfile"
	"fusevm/plan"
	"fusevm/scenarios"
	"fusevm/verdict"
)

// Status is where a run stands, for a live progress line.
type Status struct {
	// Stage is "prepare" (source, build, guest image) or "boot" (VMs).
	Stage string
	// Variant is the kernel and variant of the stage.
	Variant string
	// Started is when the run started.
	Started time.Time
	// Finish is when the run should end, from the durations of the same
	// steps in earlier runs (TimingsFile in the cache); zero when one of
	// them has never been timed.
	Finish time.Time
	// Done and Total count the VM runs.
	Done, Total int
}

// StatusLogger is a Logger that shows a run's Status; the harness tells it
// at every change of stage.
type StatusLogger interface {
	Status(Status)
}

// TimingsFile, in the cache, keeps how long preparing each variant, each
// scenario and a VM's boot and power-off took the last time.
const TimingsFile = "timings.json"

// timings is TimingsFile.
type timings struct {
	// Prepare is by variant (kernel, name and config).
	Prepare map[string]time.Duration `json:"prepare_ns"`
	// Scenario is by scenario name.
	Scenario map[string]time.Duration `json:"scenario_ns"`
	// VM is what a VM costs besides its scenarios: boot and power-off.
	VM time.Duration `json:"vm_ns"`
}

// tracker follows a run's progress and estimates its end.
type tracker struct {
	h       *Harness
	path    string
	mu      sync.Mutex
	t       timings
	start   time.Time
	vs      []*plan.Variant
	ss      []scenarios.Scenario
	prepped []bool
	cur     int // variant being prepared, -1 when none
	curAt   time.Time
	jobs    []*vmJob
	running map[*vmJob]time.Time
	done    int
}

func (h *Harness) newTracker(p *plan.Plan) *tracker {
	tr := &tracker{h: h, start: time.Now(), vs: p.Variants, ss: p.Scenarios, prepped: make([]bool, len(p.Variants)), cur: -1, running: map[*vmJob]time.Time{}}
	if h.Cache != "" {
		tr.path = filepath.Join(h.Cache, TimingsFile)
		if data, err := os.ReadFile(tr.path); err == nil {
			json.Unmarshal(data, &tr.t)
		}
	}
	if tr.t.Prepare == nil {
		tr.t.Prepare = map[string]time.Duration{}
	}
	if tr.t.Scenario == nil {
		tr.t.Scenario = map[string]time.Duration{}
	}
	return tr
}

func prepareKey(v *plan.Variant) string { return v.Kernel.Name + " " + v.Name + " " + v.Config }

// vmCost estimates one VM running ss.
func (tr *tracker) vmCost(ss []scenarios.Scenario) (time.Duration, bool) {
	if tr.t.VM == 0 {
		return 0, false
	}
	d := tr.t.VM
	for _, s := range ss {
		sd, ok := tr.t.Scenario[s.Name]
		if !ok {
			return 0, false
		}
		d += sd
	}
	return d, true
}

// variantVMs estimates the VM runs of a variant not yet prepared.
func (tr *tracker) variantVMs() (time.Duration, bool) {
	groups := [][]scenarios.Scenario{tr.ss}
	if tr.h.Isolate {
		groups = nil
		for _, s := range tr.ss {
			groups = append(groups, []scenarios.Scenario{s})
		}
	}
	var d time.Duration
	for _, g := range groups {
		c, ok := tr.vmCost(g)
		if !ok {
			return 0, false
		}
		d += c
	}
	return d * time.Duration(max(tr.h.Count, 1)), true
}

// finish estimates the end of the run; zero when it cannot.
func (tr *tracker) finish() time.Time {
	now := time.Now()
	var prep, vms time.Duration
	for i, v := range tr.vs {
		if tr.prepped[i] {
			continue
		}
		d, ok := tr.t.Prepare[prepareKey(v)]
		if !ok {
			return time.Time{}
		}
		if i == tr.cur {
			d = max(0, d-now.Sub(tr.curAt))
		}
		prep += d
		vd, ok := tr.variantVMs()
		if !ok {
			return time.Time{}
		}
		vms += vd
	}
	for _, j := range tr.jobs {
		if j.finished {
			continue
		}
		d, ok := tr.vmCost(j.ss)
		if !ok {
			return time.Time{}
		}
		if at, ok := tr.running[j]; ok {
			d = max(0, d-now.Sub(at))
		}
		vms += d
	}
	return now.Add(prep + vms/time.Duration(max(tr.h.VMs, 1)))
}

// status tells the logger, if it shows statuses.
func (tr *tracker) status(stage, variant string) {
	sl, ok := tr.h.Log.(StatusLogger)
	if !ok {
		return
	}
	// The jobs of the prepared variants, and what the others will give.
	groups := 1
	if tr.h.Isolate {
		groups = len(tr.ss)
	}
	total := len(tr.jobs)
	for _, p := range tr.prepped {
		if !p {
			total += groups * max(tr.h.Count, 1)
		}
	}
	sl.Status(Status{Stage: stage, Variant: variant, Started: tr.start, Finish: tr.finish(), Done: tr.done, Total: total})
}

func (tr *tracker) prepareStart(i int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.cur, tr.curAt = i, time.Now()
	tr.status("prepare", tr.vs[i].Kernel.Name+" "+tr.vs[i].Label())
}

func (tr *tracker) prepareDone(i int, ok bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if ok {
		learn(tr.t.Prepare, prepareKey(tr.vs[i]), time.Since(tr.curAt))
	}
	tr.prepped[i], tr.cur = true, -1
}

// addJobs adds a prepared variant's VM jobs to the estimate.
func (tr *tracker) addJobs(js []*vmJob) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.jobs = append(tr.jobs, js...)
}

func (tr *tracker) jobStart(j *vmJob) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.running[j] = time.Now()
	tr.status("boot", j.v.Kernel.Name+" "+j.v.Label())
}

// jobDone learns from a finished VM run: each scenario's duration, and
// what its VMs cost besides them.
func (tr *tracker) jobDone(j *vmJob) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	wall := time.Since(tr.running[j])
	delete(tr.running, j)
	j.finished = true
	tr.done++
	if j.err == nil && j.vms > 0 {
		var sum time.Duration
		for _, r := range j.results {
			if r.Duration > 0 && r.Verdict != verdict.Skip && r.Verdict != verdict.Infra {
				learn(tr.t.Scenario, r.Scenario, r.Duration)
				sum += r.Duration
			}
		}
		if over := (wall - sum) / time.Duration(j.vms); over > 0 {
			tr.t.VM = mean(tr.t.VM, over)
		}
	}
	if len(tr.running) > 0 || tr.done < len(tr.jobs) {
		tr.status("boot", j.v.Kernel.Name+" "+j.v.Label())
	}
}

// learn records d as the duration of key: the mean of d and what was
// known, so that one slow run (a loaded machine) does not skew the next
// estimate alone.
func learn(m map[string]time.Duration, key string, d time.Duration) {
	m[key] = mean(m[key], d)
}

func mean(old, d time.Duration) time.Duration {
	if old <= 0 {
		return d
	}
	return (old + d) / 2
}

// save writes the timings back to the cache (best effort).
func (tr *tracker) save() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.path == "" {
		return
	}
	data, err := json.MarshalIndent(tr.t, "", "  ")
	if err != nil {
		return
	}
	atomicfile.Write(tr.path, append(data, '\n'), 0o600)
}
