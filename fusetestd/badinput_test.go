package fusetestd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// runCLI runs fusetestd to completion and returns its exit code, stdout and
// stderr.
func runCLI(t *testing.T, dropCap bool, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := command(ctx, dropCap, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("run fusetestd %v: %v", args, err)
	return 0, "", ""
}

// expectFailure checks for the exit code and a single stderr line naming
// the cause.
func expectFailure(t *testing.T, code int, stderr string, wantCode int, cause string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != wantCode || !strings.HasPrefix(lines[0], "fusetestd: ") || !strings.Contains(lines[0], cause) {
		t.Fatalf("exit %d, stderr %q; want exit %d and a line naming %q", code, stderr, wantCode, cause)
	}
	if wantCode == 1 && len(lines) != 1 {
		t.Fatalf("stderr has %d lines, want one: %q", len(lines), stderr)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	notDir := filepath.Join(e.backing, "a.txt")
	empty := t.TempDir()
	stale := t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: ctl.KeeperSocket(stale), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close() // the socket file stays, nothing listens

	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		cause string
	}{
		{"backing missing", []string{"serve", "--state", e.state, "--backing", "/nonexistent"}, 1, "backing directory /nonexistent: no such file"},
		{"backing not a directory", []string{"serve", "--state", e.state, "--backing", notDir}, 1, "not a directory"},
		{"no keeper", []string{"serve", "--state", empty, "--backing", e.backing}, 1, "no keeper"},
		{"stale keeper socket", []string{"serve", "--state", stale, "--backing", e.backing}, 1, "stale socket"},
		{"unknown recovery", []string{"serve", "--state", e.state, "--backing", e.backing, "--recovery", "close"}, 2, "--recovery"},
		{"missing flag", []string{"serve", "--state", e.state}, 2, "--backing is required"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"mountpoint missing", []string{"keeper", "--mount", "/nonexistent", "--state", empty}, 1, "mountpoint"},
		{"second keeper, same state", []string{"keeper", "--mount", empty, "--state", e.state}, 1, "another keeper"},
		{"second keeper, same mountpoint", []string{"keeper", "--mount", e.mnt, "--state", empty}, 1, "mountpoint busy"},
		{"mountpoint busy", []string{"keeper", "--mount", e.backing, "--state", empty}, 1, "mountpoint busy"},
		{"status without keeper or daemon", []string{"status", "--state", empty}, 1, "no keeper"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, false, tc.args...)
			expectFailure(t, code, stderr, tc.code, tc.cause)
		})
	}
	for _, dir := range []string{empty, e.backing} {
		if _, err := fuseabi.MountConn(dir); err == nil {
			t.Errorf("a FUSE mount was left at %s", dir)
		}
	}

	t.Run("second generation while one serves", func(t *testing.T) {
		e.serve()
		code, _, stderr := runCLI(t, false, "serve", "--state", e.state, "--backing", e.backing)
		expectFailure(t, code, stderr, 1, "still holds the connection")
	})
}

func TestWithoutCapSysAdmin(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	code, _, stderr := runCLI(t, true, "serve", "--state", e.state, "--backing", e.backing)
	expectFailure(t, code, stderr, 1, "passthrough refused")

	p := e.startServe(true, "--no-passthrough")
	p.waitLine(t, "serving")
	fd := e.mustOpen("a.txt", unix.O_RDONLY)
	e.expectContent(fd, content)
	e.close(fd)
	if st := e.status(); !st.PlainIO || st.Served["READ"] == 0 {
		t.Fatalf("want plain I/O without CAP_SYS_ADMIN: %+v", st)
	}
}

func TestStatusAndUmountCommands(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := ctl.WaitServing(ctx, e.state, 1); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, false, "status", "--state", e.state)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var st struct {
		Keeper *ctl.KeeperStatus `json:"keeper"`
		Daemon *ctl.Status       `json:"daemon"`
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil || st.Keeper == nil || st.Daemon == nil {
		t.Fatalf("status output %q: %v", stdout, err)
	}
	if st.Keeper.Conn != e.conn || st.Daemon.Generation != 1 || !st.Daemon.Serving {
		t.Fatalf("status: %+v %+v", st.Keeper, st.Daemon)
	}
	if code, _, stderr := runCLI(t, false, "umount", "--state", e.state); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	if _, err := fuseabi.MountConn(e.mnt); err == nil {
		t.Fatal("still mounted after umount")
	}
	select {
	case <-e.keeper.done:
	case <-time.After(5 * time.Second):
		t.Fatal("keeper still running after umount")
	}
	select {
	case <-e.daemons[0].done:
	case <-time.After(5 * time.Second):
		t.Fatal("daemon still running after umount")
	}
}

func TestUmountWithoutKeeper(t *testing.T) {
	e := newEnv(t, map[string]string{"a.txt": content})
	e.serve()
	e.keeper.kill(t, unix.SIGKILL)
	if code, _, stderr := runCLI(t, false, "umount", "--state", e.state); code != 0 {
		t.Fatalf("umount: exit %d: %s", code, stderr)
	}
	if _, err := fuseabi.MountConn(e.mnt); err == nil {
		t.Fatal("still mounted after umount")
	}
	select {
	case <-e.daemons[0].done:
	case <-time.After(5 * time.Second):
		t.Fatal("daemon still running after the abort")
	}
}
