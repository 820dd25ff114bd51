package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
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

// root is the fusevm source tree (the shipped configs and series).
var root = filepath.Join("..")

// logger records progress lines.
type logger struct {
	mu    sync.Mutex
	lines []string
}

func (l *logger) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}
func (l *logger) Stage(what string)                 { l.add("stage " + what) }
func (l *logger) Progress(string)                   {}
func (l *logger) Done(what string, _ time.Duration) { l.add("done " + what) }
func (l *logger) Printf(format string, a ...any)    { l.add(fmt.Sprintf(format, a...)) }

func (l *logger) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// fake stands in for building and booting. Variants are looked up by name.
type fake struct {
	mu sync.Mutex
	// prepareErr fails the preparation of these variants.
	prepareErr map[string]error
	// executeErr fails the VMs of these variants.
	executeErr map[string]error
	// verdict gives the verdict of a scenario on a variant in the n-th
	// VM job of that variant (n from 1); PASS when it returns "".
	verdict func(variant, scenario string, n int) verdict.Verdict
	// boot adds a "(boot)" CRASH row to every VM of these variants.
	boot map[string]bool
	// features gives the features the guest reports in the n-th VM job
	// of a variant (n from 1); none when it returns nil.
	features func(variant string, n int) []events.Feature
	// during, if set, runs inside every Execute call.
	during func(ctx context.Context, job execute.Job)

	// stops says, per variant, whether its VMs were to stop at stale-id
	// failing (and not at it passing): execute.Job.Stop.
	stops   map[string]bool
	events  []string // "prepare v", "execute v [scenarios] dir"
	calls   map[string]int
	active  int
	maxLive int
}

func (f *fake) Prepare(_ context.Context, v *plan.Variant, info *report.Kernel) (*Bootable, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, "prepare "+v.Name)
	info.Identity, info.Version = "fake "+v.Kernel.Spec, "7.3.4"
	if err := f.prepareErr[v.Name]; err != nil {
		return nil, err
	}
	info.Key = "key-" + v.Name
	return &Bootable{Kernel: "bzImage-" + v.Name, Initramfs: "initramfs.cpio"}, nil
}

func (f *fake) Execute(ctx context.Context, job execute.Job) (*execute.Outcome, error) {
	variant := strings.TrimPrefix(job.Kernel, "bzImage-")
	var names []string
	for _, s := range job.Scenarios {
		names = append(names, s.Name)
	}
	f.mu.Lock()
	f.events = append(f.events, fmt.Sprintf("execute %s %v %s", variant, names, job.OutDir))
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[variant]++
	n := f.calls[variant]
	if f.stops == nil {
		f.stops = map[string]bool{}
	}
	f.stops[variant] = job.Stop != nil && job.Stop("stale-id", verdict.Fail) && !job.Stop("stale-id", verdict.Pass)
	f.active++
	f.maxLive = max(f.maxLive, f.active)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.active--
		f.mu.Unlock()
	}()
	if f.during != nil {
		f.during(ctx, job)
	}
	if err := f.executeErr[variant]; err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	o := &execute.Outcome{VMs: []*vmtest.Result{{Accel: vmtest.AccelTCG}}}
	for _, s := range job.Scenarios {
		r := report.Result{Scenario: s.Name, Verdict: verdict.Pass, ConsoleLog: filepath.Join(job.OutDir, "console.log")}
		if f.verdict != nil {
			if v := f.verdict(variant, s.Name, n); v != "" {
				r.Verdict, r.Reason = v, "the fake says "+string(v)
			}
		}
		o.Results = append(o.Results, r)
	}
	if f.features != nil {
		o.Features = f.features(variant, n)
	}
	if f.boot[variant] {
		o.Boot = append(o.Boot, report.Result{Scenario: execute.BootScenario, Verdict: verdict.Crash, Reason: "outside any scenario: kernel report: WARNING"})
	}
	return o, nil
}

// testPlan is a plan of the named variants of the 7.3 series ("baseline"
// or a version) on a fake kernel, running the given built-in scenarios
// (all PASS expected except the reproducers of the baseline).
func testPlan(t *testing.T, scen []string, variants ...string) *plan.Plan {
	t.Helper()
	ss, err := scenarios.Load(scen)
	if err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Scenarios: ss}
	for _, name := range variants {
		s := plan.Spec{Kernel: plan.Kernel{Name: "k", Spec: "fake:1"}, Config: "base", Name: name}
		if name != "baseline" {
			s.Series = filepath.Join(root, "patches", "fuse-passthrough-recovery", "7.3", "v2")
		}
		v, err := plan.NewVariant(root, s, ss)
		if err != nil {
			t.Fatal(err)
		}
		p.Variants = append(p.Variants, v)
	}
	return p
}

func newHarness(f *fake, o Options) (*Harness, *logger) {
	l := &logger{}
	o.Log = l
	return &Harness{Options: o, Stages: f}, l
}

// cells indexes results by "variant/scenario".
func cellsOf(run *report.Run) map[string]report.Result {
	out := map[string]report.Result{}
	for _, r := range run.Results {
		out[r.Variant+"/"+r.Scenario] = r
	}
	return out
}

// TestFailuresBecomeCells: a variant that does not apply, one whose source
// cannot be fetched, one whose VM cannot start and one with a bad spec each
// get a cell per scenario with the cause; the good variant still runs, and
// the three output files are written.
func TestFailuresBecomeCells(t *testing.T) {
	apply := &kernel.ApplyError{Patch: "0001-a.patch", File: "fs/fuse/dev.c", Hunk: "#1 @@ -1,3 +1,3 @@"}
	build := &kernel.BuildError{Stage: "compile", File: "fs/fuse/backing.c", Msg: "error: x undeclared", Tail: "CC fs/fuse/backing.o\nerror: x undeclared"}
	f := &fake{
		prepareErr: map[string]error{
			"noapply": apply,
			"nobuild": build,
			"nofetch": fmt.Errorf("source: %w", errors.New("tarball linux.tar.xz is corrupt")),
			"badspec": fmt.Errorf("source: %w", kernel.ErrBadSpec),
		},
		executeErr: map[string]error{"noqemu": errors.New("qemu-system-x86_64: executable file not found in $PATH")},
	}
	h, log := newHarness(f, Options{VMs: 2, Count: 1, Subdirs: true})
	p := testPlan(t, []string{"smoke-passthrough", "leak-after-restart"}, "baseline", "noapply", "nobuild", "nofetch", "noqemu", "badspec", "good")
	out := h.Run(context.Background(), p, t.TempDir())

	if len(out.Run.Kernels) != 7 || len(out.Run.Results) != 14 {
		t.Fatalf("%d kernels, %d results; want 7 and 14", len(out.Run.Kernels), len(out.Run.Results))
	}
	cells := cellsOf(out.Run)
	for _, c := range []struct {
		variant string
		verdict verdict.Verdict
		reason  string
	}{
		{"baseline", verdict.Fail, "the fake says FAIL"},
		{"noapply", verdict.Skip, "patch 0001-a.patch does not apply: fs/fuse/dev.c hunk #1 @@ -1,3 +1,3 @@"},
		{"nobuild", verdict.Skip, "kernel compile failed in fs/fuse/backing.c: error: x undeclared"},
		{"nofetch", verdict.Infra, "source: tarball linux.tar.xz is corrupt"},
		{"noqemu", verdict.Infra, "VM: qemu-system-x86_64: executable file not found in $PATH"},
		{"badspec", verdict.Infra, "source: bad kernel source"},
		{"good", verdict.Pass, ""},
	} {
		r := cells[c.variant+"/leak-after-restart"]
		if c.variant == "baseline" {
			continue // checked below: the fake passes it
		}
		if r.Verdict != c.verdict || r.Reason != c.reason || r.AsExpected != (c.verdict == verdict.Pass) {
			t.Errorf("%s: %s %q (as expected %v), want %s %q", c.variant, r.Verdict, r.Reason, r.AsExpected, c.verdict, c.reason)
		}
	}
	// The baseline ran: the reproducer passing there is unexpected.
	if r := cells["baseline/leak-after-restart"]; r.Verdict != verdict.Pass || r.AsExpected || r.Expected != verdict.Fail {
		t.Errorf("baseline: %+v", r)
	}
	var failed []string
	for _, fl := range out.Failures {
		failed = append(failed, fl.Variant.Name+":"+string(fl.Verdict))
	}
	if want := []string{"noapply:SKIP", "nobuild:SKIP", "nofetch:INFRA", "badspec:INFRA", "noqemu:INFRA"}; !reflect.DeepEqual(failed, want) {
		t.Errorf("failures %v, want %v", failed, want)
	}
	if !errors.Is(out.Failures[3].Err, kernel.ErrBadSpec) {
		t.Errorf("the bad spec's error lost its cause: %v", out.Failures[3].Err)
	}
	byVariant := map[string]report.Kernel{}
	for _, k := range out.Run.Kernels {
		byVariant[k.Variant] = k
	}
	if byVariant["noapply"].BuildError == "" || byVariant["nofetch"].BuildError != "" || byVariant["good"].Key != "key-good" || byVariant["nofetch"].Identity != "fake fake:1" {
		t.Errorf("kernels: %+v", out.Run.Kernels)
	}
	if len(byVariant["good"].Patches) != 2 || !reflect.DeepEqual(byVariant["good"].Claims, []string{"close_all_ioctl", "same_inode_reuse"}) {
		t.Errorf("good kernel: %+v", byVariant["good"])
	}
	logs := log.text()
	for _, want := range []string{
		"k noapply: SKIP: patch 0001-a.patch does not apply",
		"k nobuild: SKIP: kernel compile failed",
		"last lines of the build log:\nCC fs/fuse/backing.o",
		"k nofetch: INFRA: source: tarball linux.tar.xz is corrupt",
		"k noqemu: INFRA: VM: qemu-system-x86_64",
		"done boot 7.3.4 good (2 scenarios) under tcg",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("progress lacks %q:\n%s", want, logs)
		}
	}
	// Every output is written, the failures included.
	dir := t.TempDir()
	if err := out.Run.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	junit, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
	summary, _ := os.ReadFile(filepath.Join(dir, "summary.md"))
	if !strings.Contains(string(junit), `<testsuite name="k nofetch" tests="2" failures="0" errors="2" skipped="0">`) || !strings.Contains(string(summary), "**INFRA** (want PASS)") {
		t.Errorf("outputs:\n%s\n%s", junit, summary)
	}
	if _, err := os.Stat(filepath.Join(dir, "results.json")); err != nil {
		t.Error(err)
	}
}

// TestScheduling prepares the variants in order while earlier ones run,
// runs at most VMs of them at once, one per variant in its own directory, and returns
// the results in plan order whatever order the VMs finish in.
func TestScheduling(t *testing.T) {
	f := &fake{during: func(context.Context, execute.Job) { time.Sleep(20 * time.Millisecond) }}
	h, _ := newHarness(f, Options{VMs: 2, Count: 1, Subdirs: true})
	names := []string{"a", "b", "c", "d", "e"}
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, names...)
	dir := t.TempDir()
	out := h.Run(context.Background(), p, dir)
	if f.maxLive != 2 {
		t.Errorf("%d VMs at once, want 2", f.maxLive)
	}
	// Variants are prepared in plan order, each VM after its variant's
	// preparation, and VMs run while later variants are prepared (the
	// fifth cannot be prepared before a VM slot frees up for the third).
	at := map[string]int{}
	var prepared []string
	for i, e := range f.events {
		at[strings.Join(strings.Fields(e)[:2], " ")] = i
		if strings.HasPrefix(e, "prepare ") {
			prepared = append(prepared, strings.TrimPrefix(e, "prepare "))
		}
	}
	if !reflect.DeepEqual(prepared, names) {
		t.Errorf("prepared %v, want plan order %v", prepared, names)
	}
	for _, n := range names {
		if at["execute "+n] < at["prepare "+n] {
			t.Errorf("%s: VM before its preparation: %v", n, f.events)
		}
	}
	if at["execute a"] > at["prepare e"] {
		t.Errorf("no VM ran while variants were prepared: %v", f.events)
	}
	var order []string
	for _, r := range out.Run.Results {
		order = append(order, r.Variant+"/"+r.Scenario)
	}
	want := []string{"a/smoke-passthrough", "a/stale-id", "b/smoke-passthrough", "b/stale-id", "c/smoke-passthrough", "c/stale-id", "d/smoke-passthrough", "d/stale-id", "e/smoke-passthrough", "e/stale-id"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("results %v, want %v", order, want)
	}
	if !out.Run.AllAsExpected() || len(out.Failures) != 0 {
		t.Errorf("failures %v", out.Failures)
	}
	if !slices.Contains(f.events, fmt.Sprintf("execute c [smoke-passthrough stale-id] %s", filepath.Join(dir, p.Variants[2].Dir()))) {
		t.Errorf("events %v", f.events)
	}
}

// TestRepeatsAndIsolate runs every scenario three times, each in a VM of
// its own, and merges the repeats: agreeing ones keep their verdict and
// list the runs, disagreeing ones are FLAKY, and a "(boot)" row is kept.
func TestRepeatsAndIsolate(t *testing.T) {
	f := &fake{
		verdict: func(variant, scenario string, n int) verdict.Verdict {
			// Jobs run in order: per repeat, one per scenario (two), so
			// stale-id's repeats are jobs 2, 4 and 6.
			if scenario == "stale-id" && n == 4 {
				return verdict.Hang
			}
			return ""
		},
		boot: map[string]bool{"v2": true},
	}
	h, _ := newHarness(f, Options{VMs: 1, Count: 3, Isolate: true})
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "v2")
	dir := t.TempDir()
	out := h.Run(context.Background(), p, dir)
	var got []string
	for _, r := range out.Run.Results {
		got = append(got, fmt.Sprintf("%s %s %v %v", r.Scenario, r.Verdict, r.Runs, r.AsExpected))
	}
	want := []string{
		"smoke-passthrough PASS [PASS PASS PASS] true",
		"stale-id FLAKY [PASS HANG PASS] false",
		"(boot) CRASH [CRASH CRASH CRASH CRASH CRASH CRASH] false",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r := out.Run.Results[1]; r.Reason != "repeats disagree (PASS x2, HANG x1): the fake says HANG" || r.Expected != verdict.Pass {
		t.Errorf("flaky cell: %+v", r)
	}
	if len(f.events) != 1+6 || f.events[2] != fmt.Sprintf("execute v2 [stale-id] %s", filepath.Join(dir, "stale-id", "run1")) {
		t.Errorf("events %v", f.events)
	}
}

// TestInterrupt cancels the run during the first VM: what finished is
// kept, the VM that was running and those not started are INFRA, and
// every cell is there.
func TestInterrupt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var f *fake
	f = &fake{during: func(_ context.Context, job execute.Job) {
		if strings.HasSuffix(job.Kernel, "-b") {
			// v-c is prepared while v-b's VM runs; the interrupt comes
			// after that (without waiting, it sometimes came first).
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				f.mu.Lock()
				prepared := slices.Contains(f.events, "prepare v-c")
				f.mu.Unlock()
				if prepared {
					break
				}
			}
			cancel()
		}
	}}
	h, _ := newHarness(f, Options{VMs: 1, Count: 1, Subdirs: true})
	p := testPlan(t, []string{"smoke-passthrough"}, "v-a", "v-b", "v-c")
	out := h.Run(ctx, p, t.TempDir())
	var got []string
	for _, r := range out.Run.Results {
		got = append(got, r.Variant+" "+string(r.Verdict)+" "+r.Reason)
	}
	want := []string{
		"v-a PASS ",
		"v-b INFRA interrupted: VM: context canceled",
		"v-c INFRA interrupted: its VM did not start: context canceled",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("results\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Cancelled before preparing: nothing is prepared, every cell is there.
	f = &fake{}
	h.Stages = f
	out = h.Run(ctx, p, t.TempDir())
	if len(out.Run.Results) != 3 || len(f.events) != 0 || out.Run.Results[0].Reason != "interrupted: not prepared: context canceled" || len(out.Run.Kernels) != 3 {
		t.Errorf("after the interrupt: events %v results %+v", f.events, out.Run.Results)
	}
}

// TestSeriesTester runs bisection targets: the whole version, then a
// prefix of its patches, each in a directory of its own, with the claims
// (and so the expectations) of the patches applied.
func TestSeriesTester(t *testing.T) {
	f := &fake{}
	h, _ := newHarness(f, Options{VMs: 1, Count: 1})
	p := testPlan(t, []string{"leak-after-restart", "reopen-after-restart"}, "v2")
	dir := t.TempDir()
	st := &SeriesTester{Harness: h, Versions: p.Variants, Scenarios: p.Scenarios, Dir: dir}
	rs, err := st.Test(context.Background(), 0, -1, nil)
	if err != nil || len(rs) != 2 || !rs[0].AsExpected || !rs[1].AsExpected {
		t.Fatalf("whole version: %+v %v", rs, err)
	}
	for run := 1; run <= 2; run++ {
		rs, err = st.Test(context.Background(), 0, 1, []string{"reopen-after-restart"})
		if err != nil || len(rs) != 1 || rs[0].Variant != "v2[1]" {
			t.Fatalf("prefix: %+v %v", rs, err)
		}
	}
	// v2's first patch does not claim same_inode_reuse: the reproducer
	// passing there is unexpected.
	if rs[0].Expected != verdict.Fail || rs[0].AsExpected {
		t.Errorf("prefix expectation: %+v", rs[0])
	}
	want := fmt.Sprintf("execute v2[1] [reopen-after-restart] %s", filepath.Join(dir, "v2-first-1", "run2"))
	if f.events[len(f.events)-1] != want {
		t.Errorf("last event %q, want %q", f.events[len(f.events)-1], want)
	}
	console := filepath.Join(dir, "console.log")
	os.WriteFile(console, []byte("boot\nfusevm: scenario leak-after-restart start\nstep 1\nstep 2\nfusevm: scenario leak-after-restart end\n"), 0o644)
	for _, c := range []struct {
		r    report.Result
		want string
	}{
		{report.Result{SplatText: "BUG: KASAN", Reason: "kernel report"}, "BUG: KASAN"},
		{report.Result{Scenario: "leak-after-restart", Reason: "line 9: EBUSY", ConsoleLog: console}, "line 9: EBUSY\nstep 1\nstep 2"},
		{report.Result{Reason: "no console", ConsoleLog: filepath.Join(dir, "nosuch")}, "no console"},
	} {
		if got := st.Excerpt(c.r); got != c.want {
			t.Errorf("excerpt %q, want %q", got, c.want)
		}
	}
}

// TestFeatures keeps each variant's first report of its kernel's features
// in its kernel entry and adds one "(features)" row, unexpected, where
// they disagree with its claims (v2's here: close_all_ioctl and
// same_inode_reuse); none where they agree or were never reported.
func TestFeatures(t *testing.T) {
	probed := func(closeAll events.FeatureState) []events.Feature {
		return []events.Feature{
			{Name: events.FeatureCloseAll, State: closeAll, Detail: "close-all " + string(closeAll)},
			{Name: events.FeatureCloseMinusOne, State: events.NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE(-1) answers EINVAL"},
			{Name: events.FeatureInodeCache, State: events.NotSupported, Detail: "no inode cache"},
		}
	}
	f := &fake{features: func(variant string, n int) []events.Feature {
		switch {
		case variant == "agrees":
			return probed(events.Supported)
		case variant == "ported-badly" && n == 1:
			return probed(events.NotSupported)
		case variant == "ported-badly":
			return probed(events.Supported) // a later VM's report is not kept
		case variant == "late" && n == 2:
			return probed(events.NotSupported) // its first VM never reported
		}
		return nil
	}}
	h, _ := newHarness(f, Options{VMs: 1, Count: 2, Isolate: true, Subdirs: true})
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "agrees", "ported-badly", "silent", "late")
	out := h.Run(context.Background(), p, t.TempDir())
	var rows []string
	for _, r := range out.Run.Results {
		if r.Scenario == plan.FeaturesScenario {
			rows = append(rows, fmt.Sprintf("%s %s %s want %s as expected %v", r.Variant, r.Scenario, r.Verdict, r.Expected, r.AsExpected))
			if r.Reason != "claims close_all_ioctl, but close-all not_supported" || r.Runs != nil {
				t.Errorf("%s: reason %q, runs %v", r.Variant, r.Reason, r.Runs)
			}
		}
	}
	want := []string{
		"ported-badly (features) FAIL want PASS as expected false",
		"late (features) FAIL want PASS as expected false",
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows\n%s\nwant\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	kept := map[string][]events.Feature{}
	for _, k := range out.Run.Kernels {
		kept[k.Variant] = k.Features
	}
	if !reflect.DeepEqual(kept["agrees"], probed(events.Supported)) || !reflect.DeepEqual(kept["ported-badly"], probed(events.NotSupported)) ||
		kept["silent"] != nil || !reflect.DeepEqual(kept["late"], probed(events.NotSupported)) {
		t.Errorf("kernel features: %+v", kept)
	}
	if out.Run.AllAsExpected() {
		t.Error("the run is as expected despite two mismatches")
	}
	// Its JSON keeps them, in results.json's kernel entry.
	dir := t.TempDir()
	if err := out.Run.WriteJSON(filepath.Join(dir, "results.json")); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "results.json"))
	if !strings.Contains(string(data), `"features": [
        {
          "name": "close_all_ioctl",
          "state": "supported",
          "detail": "close-all supported"
        },`) {
		t.Errorf("results.json:\n%s", data)
	}
}

// TestSeriesTesterRowsOnly: asked only for rows that are no scenario (a
// patch bisection of a "(features)" mismatch), the tester still boots the
// version with its scenarios, since only a VM can give those rows.
func TestSeriesTesterRowsOnly(t *testing.T) {
	f := &fake{}
	h, _ := newHarness(f, Options{VMs: 1, Count: 1})
	p := testPlan(t, []string{"smoke-passthrough", "stale-id"}, "v2")
	st := &SeriesTester{Harness: h, Versions: p.Variants, Scenarios: p.Scenarios, Dir: t.TempDir()}
	rs, err := st.Test(context.Background(), 0, 1, []string{plan.FeaturesScenario})
	if err != nil || len(rs) != 2 {
		t.Fatalf("results %+v, %v; want both scenarios", rs, err)
	}
	if last := f.events[len(f.events)-1]; !strings.HasPrefix(last, "execute v2[1] [smoke-passthrough stale-id] ") {
		t.Errorf("last event %q", last)
	}
}

func TestOutcomeBadSpec(t *testing.T) {
	out := &Outcome{Failures: []Failure{{Verdict: verdict.Infra, Err: errors.New("QEMU failed")}}}
	if out.BadSpec() {
		t.Error("an infrastructure failure is a bad spec")
	}
	out.Failures = append(out.Failures, Failure{Verdict: verdict.Infra, Err: fmt.Errorf("source: %w", kernel.ErrBadSpec)})
	if !out.BadSpec() {
		t.Error("a wrapped ErrBadSpec is no bad spec")
	}
	if (&Outcome{}).BadSpec() {
		t.Error("no failure is a bad spec")
	}
}
