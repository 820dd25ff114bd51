package main

import (
	"context"
	"flag"
	"os"

	"fusevm/harness"
	"fusevm/vmtest"
)

// cmdShell is "fusevm shell": a kernel variant (the flags of run) booted
// into the guest's debugging shell on the serial console, this terminal;
// with --gdb, QEMU's gdb stub waits for gdb.
func cmdShell(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("shell", flag.ContinueOnError)
	var c common
	c.registerBoot(fs)
	fs.IntVar(&c.jobs, "make-j", 0, "make -j for kernel builds (default: CPUs+1)")
	var vf variantFlags
	vf.register(fs)
	gdb := fs.Bool("gdb", false, "start QEMU's gdb stub with the CPUs stopped until gdb continues, boot with nokaslr, and print the gdb command line")
	gdbPort := fs.Int("gdb-port", 1234, "the gdb stub's TCP port")
	if err := parseArgs(fs, args); err != nil {
		return parseError(err)
	}
	if *gdbPort < 1 || *gdbPort > 65535 {
		return exitUsage, usagef("shell: --gdb-port %d: want 1-65535", *gdbPort)
	}
	v, ss, code, err := vf.variant(fs, c.cache)
	if err != nil {
		return code, err
	}
	p, o := c.start()
	defer p.Close()
	sh := harness.Shell{Variant: v, Scenarios: ss, Terminal: vmtest.Terminal{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}}
	if *gdb {
		sh.GDBPort = *gdbPort
	}
	sh.Ready = func(si harness.ShellInfo) {
		p.Close()
		sh.WriteBanner(os.Stderr, si)
	}
	if err := harness.New(o).Shell(ctx, sh); err != nil {
		return exitFail, err
	}
	return exitOK, nil
}
