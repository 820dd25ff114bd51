package interp_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"fusevm/scenarios/interp/interptest"
)

// TestSpawnedChildReadiness: a child's first line on stdout is its ready
// line, its exit without one is reported as such at once, and a child that
// says nothing is waited for only as long as the context lasts.
func TestSpawnedChildReadiness(t *testing.T) {
	sp := interptest.StartSpawner(t)
	ctx := context.Background()

	ready, err := sp.Start([]string{"/bin/sh", "-c", "echo serving generation=1; sleep 0.2; echo later"})
	if err != nil {
		t.Fatal(err)
	}
	if line, err := ready.WaitReady(ctx); err != nil || line != "serving generation=1" {
		t.Errorf("ready child: %q, %v", line, err)
	}

	// The line and the exit come together: the line still counts.
	quick, err := sp.Start([]string{"/bin/sh", "-c", "echo keeper ready"})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if line, err := quick.WaitReady(ctx); err != nil || line != "keeper ready" {
		t.Errorf("child that printed its line and exited: %q, %v", line, err)
	}

	failed, err := sp.Start([]string{"/bin/sh", "-c", "echo bad flag >&2; exit 2"})
	if err != nil {
		t.Fatal(err)
	}
	if line, err := failed.WaitReady(ctx); err == nil || !strings.Contains(err.Error(), "exited before serving") {
		t.Errorf("child that exited silently: %q, %v; want an exit error", line, err)
	}

	silent, err := sp.Start([]string{"/bin/sh", "-c", "exec sleep 30"})
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(silent.PID, syscall.SIGKILL)
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := silent.WaitReady(tctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("silent child: %v, want the context's deadline", err)
	}

	if _, err := sp.Start([]string{"/nonexistent/fusetestd"}); err == nil {
		t.Error("a program that does not exist started")
	}
}
