// Command fusevm validates FUSE passthrough kernel patches in QEMU: it
// builds a kernel with a patch series applied, boots it with the guest
// agent and test daemon, runs crash/restart scenarios and reports a verdict
// per scenario. See README.md for the commands, flags and exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"fusevm/agent"
	"fusevm/fusetestd"
	"fusevm/initramfs"
)

// Exit codes.
const (
	exitOK    = 0 // every result as expected
	exitFail  = 1 // some result unexpected, or an error
	exitUsage = 2 // bad flags or arguments
)

// usageError marks errors that exit with exitUsage.
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

const usage = `usage: fusevm <command> [flags]

commands:
  run        build one kernel variant, boot it, run scenarios, report
  matrix     kernels x series versions x configs x scenarios from configs/matrix.toml
  bisect-step     for git bisect run in a kernel tree: exit 0 good, 1 bad, 125 skip
  bisect series   the first series version, then the first patch, whose results turn unexpected
  mutate     mutation analysis of a series: build its mutants, run the scenarios, list the survivors
  report     the plain-text report of a results directory, to paste into a reply (fusevm report RESULTS)
  repro      run one cell of a results directory again on the same kernel and image (fusevm repro RESULTS CELL)
  shell      boot a kernel variant (the flags of run) into a shell on its console; --gdb for the gdb stub
  scenarios  list the built-in scenarios, or check scripts (fusevm scenarios FILE.fvm...)
  cache verify    list the cache's entries and check their digests
  cache prune     remove the least recently used cache entries (--max-size SIZE, --kind K)

Run "fusevm <command> -h" for the flags of a command; flags may come
before or after the operands.
`

// main is multi-call: started under the name init (the guest's /init) it
// is the guest agent, under the name fusetestd (the guest's
// /bin/fusetestd) the test daemon, and otherwise the host CLI. So one
// static binary is all a guest image needs (see package initramfs).
func main() {
	switch filepath.Base(os.Args[0]) {
	case "init":
		os.Exit(agent.Main(os.Args[1:]))
	case "fusetestd":
		os.Exit(fusetestd.Main(os.Args[1:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run", "matrix", "bisect-step", "bisect", "repro", "shell":
		// These boot the running executable as the guest's /init: a
		// binary that cannot be it fails now, not after a kernel build.
		if err := initramfs.CheckExecutable(); err != nil {
			fmt.Fprintln(os.Stderr, "fusevm:", err)
			if args[0] == "bisect-step" {
				return exitSkip
			}
			return exitFail
		}
	}
	var err error
	var code int
	switch args[0] {
	case "run":
		code, err = cmdRun(ctx, args[1:])
	case "matrix":
		code, err = cmdMatrix(ctx, args[1:])
	case "bisect-step":
		return cmdBisectStep(ctx, args[1:])
	case "bisect":
		if len(args) < 2 || args[1] != "series" {
			err = usagef("bisect: want \"bisect series\" (or bisect-step for git bisect run)")
			break
		}
		code, err = cmdBisectSeries(ctx, args[2:])
	case "mutate":
		code, err = cmdMutate(ctx, args[1:])
	case "report":
		code, err = cmdReport(args[1:])
	case "repro":
		code, err = cmdRepro(ctx, args[1:])
	case "shell":
		code, err = cmdShell(ctx, args[1:])
	case "scenarios":
		code, err = cmdScenarios(args[1:])
	case "cache":
		code, err = cmdCache(args[1:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return exitOK
	default:
		err = usagef("unknown command %q", args[0])
	}
	if err != nil && ctx.Err() != nil {
		err = errors.New("interrupted (nothing half-written is kept; QEMU and the build were stopped)")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fusevm:", err)
		var ue usageError
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitFail
	}
	return code
}
