package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"fusevm/events"
	"fusevm/execute"
	"fusevm/kernel"
	"fusevm/plan"
	"fusevm/report"
	"fusevm/scenarios"
	"fusevm/verdict"
	"fusevm/vmtest"
)

// Logger receives the progress of a run: the stages of kernel.Logger and
// plain lines. It must be safe for concurrent use (VMs run in parallel).
type Logger interface {
	kernel.Logger
	Printf(format string, a ...any)
}

// Bootable is a prepared variant: the files its VMs boot.
type Bootable struct {
	Kernel string
	// Vmlinux is the unstripped kernel for decoding stacks; "" for a
	// prebuilt kernel.
	Vmlinux   string
	Initramfs string
}

// Stages are the steps of a run that need the machine. Machine is the real
// one.
type Stages interface {
	// Prepare makes a variant bootable. It fills info (the exact
	// revision, the build key...) as far as it gets, also when it fails.
	Prepare(ctx context.Context, v *plan.Variant, info *report.Kernel) (*Bootable, error)
	// Execute runs a job's scenarios in VMs (execute.Run).
	Execute(ctx context.Context, job execute.Job) (*execute.Outcome, error)
}

// Options are the settings of a run.
type Options struct {
	// Cache is the cache root: sources, builds, guest images, the KVM probe.
	Cache string
	// MakeJobs is make's -j for kernel builds; 0 for the CPUs + 1.
	MakeJobs int
	Accel    vmtest.Accel
	// Console, if set, receives the serial consoles as they come.
	Console io.Writer
	// VMs is how many VMs run at once (at least 1).
	VMs int
	// Count is how many times every scenario runs (at least 1); repeats
	// that disagree make the cell FLAKY.
	Count int
	// Isolate runs every scenario in a VM of its own, instead of one VM
	// per variant (and repeat).
	Isolate bool
	// StopAtUnexpected stops a VM at the first scenario whose guest
	// verdict is not the expected one; the scenarios after it are SKIP.
	// For mutation analysis, where one unexpected cell decides.
	StopAtUnexpected bool
	// Subdirs puts each variant's console logs and events in a
	// subdirectory of the run's directory named by plan.Variant.Dir;
	// without it they go in the run's directory itself (one variant).
	Subdirs bool
	Log     Logger
}

// Harness runs plans.
type Harness struct {
	Options
	Stages Stages
	// interactive boots Shell's VM; nil for vmtest.RunInteractive.
	interactive interactive
}

// New returns a harness that builds and boots on this machine.
func New(o Options) *Harness {
	return &Harness{Options: o, Stages: &Machine{Cache: o.Cache, MakeJobs: o.MakeJobs, Log: o.Log}}
}

// Failure is a variant, or one of its VM jobs, that could not run.
type Failure struct {
	Variant *plan.Variant
	// Verdict is what its cells got: SKIP or INFRA.
	Verdict verdict.Verdict
	Err     error
}

// Outcome is a finished run.
type Outcome struct {
	// Run holds a kernel per variant and a result per variant and
	// scenario (plus "(boot)" and "(features)" rows), in plan order.
	Run      *report.Run
	Failures []Failure
}

// vmJob is one VM run: some scenarios of a prepared variant.
type vmJob struct {
	variant int
	v       *plan.Variant
	b       *Bootable
	version string // the kernel's version, for the progress line
	ss      []scenarios.Scenario
	dir     string
	results []report.Result
	// features are the kernel's features as its guest reported them (nil
	// when no VM got that far).
	features []events.Feature
	// err says why the job did not run; verdict and reason are its cells'.
	err     error
	verdict verdict.Verdict
	reason  string
	// vms is the number of VMs it booted; finished is set once it ran
	// (for the progress estimate).
	vms      int
	finished bool
}

// Run runs the plan and writes the VMs' consoles and events under outDir.
// It prepares the variants one after another and starts each prepared
// variant's VMs, VMs at a time, while the next one is prepared (a kernel
// build and a VM use the machine's cores together). When ctx is
// cancelled, what finished is kept and the rest becomes INFRA cells.
func (h *Harness) Run(ctx context.Context, p *plan.Plan, outDir string) *Outcome {
	run := &report.Run{Started: time.Now()}
	out := &Outcome{Run: run}
	raw := make([][]report.Result, len(p.Variants))
	if err := writeScenarios(outDir, p.Scenarios); err != nil {
		h.Log.Printf("scenario copies: %v", err)
	}
	tr := h.newTracker(p)
	prepared := make(chan *vmJob)
	go func() {
		defer close(prepared)
		for i, v := range p.Variants {
			info := kernelInfo(v)
			tr.prepareStart(i)
			b, err := h.prepare(ctx, v, &info)
			tr.prepareDone(i, err == nil)
			if err != nil {
				if lerr := keepBuildLog(err, h.variantDir(v, outDir), &info); lerr != nil {
					h.Log.Printf("%s %s: %v", v.Kernel.Name, v.Label(), lerr)
				}
				vd, reason := h.failure(ctx, v, err)
				if vd == verdict.Skip {
					info.BuildError = err.Error()
				}
				out.Failures = append(out.Failures, Failure{Variant: v, Verdict: vd, Err: err})
				raw[i] = cells(p.Scenarios, vd, reason)
				run.Kernels = append(run.Kernels, info)
				continue
			}
			info.Boot = bootRecord(v, b)
			run.Kernels = append(run.Kernels, info)
			js := h.jobs(i, v, b, info.Version, p.Scenarios, outDir)
			tr.addJobs(js)
			for _, j := range js {
				prepared <- j
			}
		}
	}()
	jobs := h.schedule(ctx, prepared, tr)
	for _, j := range jobs {
		if j.err != nil {
			out.Failures = append(out.Failures, Failure{Variant: j.v, Verdict: j.verdict, Err: j.err})
			j.results = cells(j.ss, j.verdict, j.reason)
		}
		raw[j.variant] = append(raw[j.variant], j.results...)
		// Every job of a variant boots the same kernel: the first
		// report of its features (in job order) is kept.
		if run.Kernels[j.variant].Features == nil {
			run.Kernels[j.variant].Features = j.features
		}
	}
	for i, v := range p.Variants {
		if r := v.CompareFeatures(run.Kernels[i].Features); r != nil {
			raw[i] = append(raw[i], *r)
		}
		run.Results = append(run.Results, settle(v, p.Scenarios, raw[i])...)
	}
	run.Finished = time.Now()
	tr.save()
	return out
}

// prepare prepares a variant unless the run was interrupted.
func (h *Harness) prepare(ctx context.Context, v *plan.Variant, info *report.Kernel) (*Bootable, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("not prepared: %w", err)
	}
	return h.Stages.Prepare(ctx, v, info)
}

// kernelInfo is what results.json says of a variant before it is prepared.
func kernelInfo(v *plan.Variant) report.Kernel {
	k := report.Kernel{Name: v.Kernel.Name, Spec: v.Kernel.Spec, Variant: v.Name, Config: v.Config, Claims: v.Claims, Series: v.SeriesPath(), RunArgs: v.RunArgs()}
	if v.Kernel.Prebuilt() {
		k.Spec, k.Prebuilt = v.Kernel.Image, true
	}
	if v.Series != nil {
		for _, pt := range v.Series.Patches {
			k.Patches = append(k.Patches, pt.Name)
		}
	}
	return k
}

// classify gives the verdict and reason of the cells of a variant or VM
// job that failed with err: SKIP when the variant is at fault (a patch
// does not apply, a config option does not survive, the build fails),
// INFRA otherwise (source, image, guest image, QEMU, an interruption).
func classify(ctx context.Context, err error) (verdict.Verdict, string) {
	if ctx.Err() != nil {
		return verdict.Infra, "interrupted: " + err.Error()
	}
	var ae *kernel.ApplyError
	var be *kernel.BuildError
	var ce *kernel.ConfigError
	if errors.As(err, &ae) || errors.As(err, &be) || errors.As(err, &ce) {
		return verdict.Skip, err.Error()
	}
	return verdict.Infra, err.Error()
}

// failure classifies the error of a variant or VM job and shows it.
func (h *Harness) failure(ctx context.Context, v *plan.Variant, err error) (verdict.Verdict, string) {
	vd, reason := classify(ctx, err)
	h.Log.Printf("%s %s: %s: %s", v.Kernel.Name, v.Label(), vd, reason)
	var be *kernel.BuildError
	if errors.As(err, &be) && be.Tail != "" {
		h.Log.Printf("last lines of the build log:\n%s", be.Tail)
	}
	return vd, reason
}

// cells gives each of the scenarios ss the verdict and reason of a failure.
func cells(ss []scenarios.Scenario, vd verdict.Verdict, reason string) []report.Result {
	rs := make([]report.Result, len(ss))
	for i, s := range ss {
		rs[i] = report.Result{Scenario: s.Name, Verdict: vd, Reason: reason}
	}
	return rs
}

// jobs splits a prepared variant's work into VM runs: per repeat, one for
// all scenarios, or one per scenario with Isolate.
func (h *Harness) jobs(i int, v *plan.Variant, b *Bootable, version string, ss []scenarios.Scenario, outDir string) []*vmJob {
	base := outDir
	if h.Subdirs {
		base = filepath.Join(outDir, v.Dir())
	}
	groups := [][]scenarios.Scenario{ss}
	if h.Isolate {
		groups = nil
		for _, s := range ss {
			groups = append(groups, []scenarios.Scenario{s})
		}
	}
	var out []*vmJob
	for rep := 1; rep <= max(h.Count, 1); rep++ {
		for _, g := range groups {
			dir := base
			if h.Isolate {
				dir = filepath.Join(dir, g[0].Name)
			}
			if h.Count > 1 {
				dir = filepath.Join(dir, fmt.Sprintf("run%d", rep))
			}
			out = append(out, &vmJob{variant: i, v: v, b: b, version: version, ss: g, dir: dir})
		}
	}
	return out
}

// schedule runs the jobs as they come, VMs at a time, in order, until
// the channel closes, and returns them all. Jobs not started when ctx is
// cancelled fail with the interruption.
func (h *Harness) schedule(ctx context.Context, jobs <-chan *vmJob, tr *tracker) []*vmJob {
	sem := make(chan struct{}, max(h.VMs, 1))
	var wg sync.WaitGroup
	var all []*vmJob
	for j := range jobs {
		all = append(all, j)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			j.err = fmt.Errorf("its VM did not start: %w", err)
			j.verdict, j.reason = h.failure(ctx, j.v, j.err)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tr.jobStart(j)
			h.boot(ctx, j)
			tr.jobDone(j)
		}()
	}
	wg.Wait()
	return all
}

// boot runs one VM job.
func (h *Harness) boot(ctx context.Context, j *vmJob) {
	what := fmt.Sprintf("boot %s %s (%d scenarios)", j.version, j.v.Label(), len(j.ss))
	h.Log.Stage(what)
	start := time.Now()
	opts := []vmtest.Option{
		vmtest.WithAccel(h.Accel),
		vmtest.WithProbeCache(filepath.Join(h.Cache, "kvm-probe.json")),
		vmtest.WithWorkDir(j.dir),
		vmtest.WithAppend(j.v.Boot.Cmdline...),
	}
	if j.v.Boot.CPUs > 0 {
		opts = append(opts, vmtest.WithCPUs(j.v.Boot.CPUs))
	}
	job := execute.Job{
		Kernel: j.b.Kernel, Vmlinux: j.b.Vmlinux, Initramfs: j.b.Initramfs,
		Scenarios: j.ss, Claims: j.v.Claims, Params: j.v.Params,
		OutDir: j.dir, Console: h.Console, VMOptions: opts,
	}
	if h.StopAtUnexpected {
		job.Stop = func(scenario string, vd verdict.Verdict) bool { return vd != j.v.Expect(scenario).Verdict }
	}
	o, err := h.Stages.Execute(ctx, job)
	if err != nil {
		j.err = fmt.Errorf("VM: %w", err)
		j.verdict, j.reason = h.failure(ctx, j.v, j.err)
		return
	}
	if err := writeVMs(j.dir, job, o); err != nil {
		h.Log.Printf("%s %s: %s: %v", j.v.Kernel.Name, j.v.Label(), VMsFile, err)
	}
	if len(o.VMs) > 1 {
		what += fmt.Sprintf(", %d VMs", len(o.VMs))
	}
	if len(o.VMs) > 0 {
		what += " under " + o.VMs[0].Accel.String()
	}
	h.Log.Done(what, time.Since(start))
	j.results = append(o.Results, o.Boot...)
	j.features = o.Features
	j.vms = len(o.VMs)
}

// settle merges the repeats of each of a variant's scenarios and settles
// every result: the scenarios in plan order, then the other rows ("(boot)",
// "(features)") in the order they came.
func settle(v *plan.Variant, ss []scenarios.Scenario, rs []report.Result) []report.Result {
	var order []string
	groups := map[string][]report.Result{}
	for _, s := range ss {
		order = append(order, s.Name)
		groups[s.Name] = nil
	}
	for _, r := range rs {
		if _, ok := groups[r.Scenario]; !ok {
			order = append(order, r.Scenario)
		}
		groups[r.Scenario] = append(groups[r.Scenario], r)
	}
	var out []report.Result
	for _, name := range order {
		if len(groups[name]) == 0 {
			continue
		}
		m := report.Merge(groups[name])
		v.Settle(&m)
		out = append(out, m)
	}
	return out
}

// BadSpec reports whether a variant could not run because its kernel
// specification was wrong (kernel.ErrBadSpec): the user's mistake, which
// the harness has already reported.
func (o *Outcome) BadSpec() bool {
	for _, f := range o.Failures {
		if errors.Is(f.Err, kernel.ErrBadSpec) {
			return true
		}
	}
	return false
}
