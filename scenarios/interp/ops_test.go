package interp

import (
	"context"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fusevm/events"
	"fusevm/scenarios/script"
	"fusevm/verdict"
)

// TestEveryStepHasAStepFunc checks that the interpreter implements the
// language the parser accepts: a step function for every op that is not a
// block, and none for an op the parser does not know as a step.
func TestEveryStepHasAStepFunc(t *testing.T) {
	for op, spec := range script.Ops {
		if _, ok := stepFuncs[op]; !ok && !spec.Block {
			t.Errorf("step %s is parsed but has no step function", op)
		}
	}
	for op := range stepFuncs {
		if spec, ok := script.Ops[op]; !ok || spec.Block {
			t.Errorf("step function for %s, which the parser does not accept as a step", op)
		}
	}
}

// blockScripts exercise each block op (thread blocks only exist in a
// race) with "sleep 1ms" bodies: the events tell how often a body ran.
var blockScripts = map[string]struct {
	text   string
	sleeps int // "sleep" step events (steps in a race emit none)
}{
	"repeat": {"repeat 3\n  sleep 1ms\nend\n", 3},
	// The round counter picks one round of three; an unmatched value
	// runs nothing.
	"if":     {"repeat 3 as=i\n  if $i 2\n    sleep 1ms\n  end\n  if $i x\n    sleep 1ms\n  end\nend\n", 1},
	"race":   {"race 20ms\n  thread\n    sleep 1ms\n  end\n  thread\n    sleep 1ms\n  end\nend\n", 0},
	"thread": {"race 20ms\n  thread\n    sleep 1ms\n  end\nend\n", 0},
}

// TestBlocks runs a script for every block op of the language, without
// mounting anything.
func TestBlocks(t *testing.T) {
	for op, spec := range script.Ops {
		if !spec.Block {
			continue
		}
		bs, ok := blockScripts[op]
		if !ok {
			t.Errorf("block %s has no test script: does runner.step run it?", op)
			continue
		}
		t.Run(op, func(t *testing.T) {
			s, err := script.Parse(op, op+".fvm", bs.text)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var evs []events.Event
			res := Run(context.Background(), s, Env{Root: t.TempDir(), Emit: func(ev events.Event) {
				mu.Lock()
				defer mu.Unlock()
				evs = append(evs, ev)
			}})
			if res.Verdict != verdict.Pass {
				t.Fatalf("%s: %s", res.Verdict, res.Detail)
			}
			sleeps, races := 0, 0
			for _, ev := range evs {
				if strings.HasPrefix(ev.Detail, "sleep ") {
					sleeps++
				}
				if _, loops, ok := strings.Cut(ev.Detail, "loops per thread "); ok {
					races++
					// Every thread looped: "[12 15]", one count per thread.
					counts := strings.Fields(strings.Trim(loops, "[]"))
					if len(counts) != strings.Count(bs.text, "thread") || slices.Contains(counts, "0") {
						t.Errorf("race report %q, want a nonzero loop count per thread", ev.Detail)
					}
				}
			}
			if wantRaces := strings.Count(bs.text, "race "); sleeps != bs.sleeps || races != wantRaces {
				t.Errorf("%d sleep events and %d race reports, want %d and %d: %+v", sleeps, races, bs.sleeps, wantRaces, evs)
			}
		})
	}
}

// TestRaceCap: the config's "race" parameter shortens a race block (never
// lengthens it), and the race's report says how long it ran.
func TestRaceCap(t *testing.T) {
	text := "race 30s\n  thread\n    sleep 1ms\n  end\nend\nrace 50ms\n  thread\n    sleep 1ms\n  end\nend\n"
	s, err := script.Parse("cap", "cap.fvm", text)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ran []string
	start := time.Now()
	res := Run(context.Background(), s, Env{Root: t.TempDir(), Params: map[string]string{"race": "200ms"}, Emit: func(ev events.Event) {
		mu.Lock()
		defer mu.Unlock()
		if _, after, ok := strings.Cut(ev.Detail, "(ran "); ok {
			ran = append(ran, strings.SplitN(after, ")", 2)[0])
		}
	}})
	if res.Verdict != verdict.Pass || time.Since(start) > 20*time.Second {
		t.Fatalf("%s %s after %s: the 30 s race was not capped", res.Verdict, res.Detail, time.Since(start))
	}
	if !slices.Equal(ran, []string{"200ms", "50ms"}) {
		t.Errorf("races ran %v, want [200ms 50ms]", ran)
	}
}

// TestKernelMemory reads the host's unreclaimable slab memory and checks
// it against itself with a generous margin (the host is not quiet).
func TestKernelMemory(t *testing.T) {
	if _, err := os.Stat("/proc/meminfo"); err != nil {
		t.Skip(err)
	}
	s, err := script.Parse("km", "km.fvm", "kernel-memory as=m\nkernel-memory at-most=$m+1G\n")
	if err != nil {
		t.Fatal(err)
	}
	if res := Run(context.Background(), s, Env{Root: t.TempDir()}); res.Verdict != verdict.Pass {
		t.Fatalf("%s: %s", res.Verdict, res.Detail)
	}
	n, err := slabUnreclaimable()
	if err != nil || n == 0 {
		t.Errorf("SUnreclaim %d, %v", n, err)
	}
}

// TestRunRefuses checks the scenarios Run refuses to start or to run.
func TestRunRefuses(t *testing.T) {
	s := &script.Script{Name: "x", Timeout: 5 * time.Second, Steps: []*script.Step{{Line: 1, Op: "frobnicate"}}}
	if res := Run(context.Background(), s, Env{Root: "relative"}); res.Verdict != verdict.Fail || !strings.Contains(res.Detail, "not an absolute path") {
		t.Errorf("relative root: %+v", res)
	}
	if res := Run(context.Background(), s, Env{Root: t.TempDir()}); res.Verdict != verdict.Fail || !strings.Contains(res.Detail, "op frobnicate is not implemented") {
		t.Errorf("unknown op: %+v", res)
	}
}

// TestKeep checks how steps store a number (as=VAR) and compare it (is=REF,
// not=REF; REF a $VAR or a number), and the detail of a mismatch.
func TestKeep(t *testing.T) {
	r := &runner{vars: map[string]string{"two": "2"}}
	for _, c := range []struct {
		flags        []string
		got, outcome string
		detail       string
	}{
		{[]string{"is=$two"}, "2", "ok", ""},
		{[]string{"is=2", "not=3"}, "2", "ok", ""},
		{[]string{"is=$two"}, "3", "error", "inode 3, want 2"},
		{[]string{"not=$two"}, "2", "error", "inode 2, want another"},
		{[]string{"is=$unset"}, "2", "error", "$unset is not set"},
		{[]string{"is=two"}, "2", "error", `"two" is neither $VAR nor a number`},
		{[]string{"as=kept", "is=3"}, "2", "error", "inode 2, want 3"}, // stores nothing
		{[]string{"as=kept", "not=3"}, "2", "ok", ""},
	} {
		got, detail := r.keep(flags(c.flags), "inode", c.got)
		if got != c.outcome || detail != c.detail {
			t.Errorf("%v on %s: %s (%s), want %s (%s)", c.flags, c.got, got, detail, c.outcome, c.detail)
		}
	}
	if r.vars["kept"] != "2" {
		t.Errorf("as=kept stored %q, want the last ok step's 2", r.vars["kept"])
	}
}

// TestDirectories checks where connections and backing filesystems live
// under the scenario root.
func TestDirectories(t *testing.T) {
	r := &runner{env: Env{Root: "/r"}}
	for name, want := range map[string][2]string{script.MainConn: {"/r/mnt", "/r/state"}, "other": {"/r/mnt-other", "/r/state-other"}} {
		if c := r.newConnection(name); c.mountDir != want[0] || c.stateDir != want[1] || c.devfd != -1 {
			t.Errorf("connection %s: %+v, want %v", name, c, want)
		}
	}
	for arg, want := range map[string]string{"a.txt": "/r/backing/a.txt", "alt:d/b.txt": "/r/backing-alt/d/b.txt"} {
		if got := r.backingPath(arg); got != want {
			t.Errorf("backingPath(%q) = %s, want %s", arg, got, want)
		}
	}
}

// TestNoConnection checks that the steps bound to the current connection
// fail cleanly before any mount.
func TestNoConnection(t *testing.T) {
	for op, fn := range stepFuncs {
		if !slices.Contains([]string{"restart", "crash", "umount", "abort", "open", "stat", "stat-async", "passthrough", "served", "recovery", "ids", "answer-open", "hold", "release", "ioctl"}, op) {
			continue
		}
		st := &script.Step{Op: op, Args: []string{"x", "y"}}
		r := &runner{conns: map[string]*connection{}}
		if got, detail := fn(r, context.Background(), st); got != "error" || detail != "no FUSE connection was mounted" {
			t.Errorf("%s before any mount: %s (%s)", op, got, detail)
		}
	}
}
