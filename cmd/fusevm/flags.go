package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"fusevm/harness"
	"fusevm/kernel"
	"fusevm/progress"
	"fusevm/report"
	"fusevm/vmtest"
)

// common holds the flags shared by the commands that build and boot.
type common struct {
	cache   string
	accel   vmtest.Accel
	jobs    int
	verbose bool
	out     string
}

// register adds the flags of commands that build kernels and write a
// results directory.
func (c *common) register(fs *flag.FlagSet) {
	c.registerBoot(fs)
	fs.IntVar(&c.jobs, "make-j", 0, "make -j for kernel builds (default: CPUs+1)")
	fs.StringVar(&c.out, "out", "", "results directory (default results/<time>)")
}

// registerBoot adds the flags every command that boots a VM has.
func (c *common) registerBoot(fs *flag.FlagSet) {
	fs.StringVar(&c.cache, "cache", kernel.DefaultCacheDir(), "cache directory (sources, builds, ccache, images)")
	fs.Var(accelFlag{&c.accel}, "accel", "QEMU accelerator `mode`: auto (the default: probe KVM, else TCG), kvm or tcg")
	fs.BoolVar(&c.verbose, "v", false, "stream the serial console")
}

// start returns the progress line of a run (the caller closes it) and
// the harness settings of the flags: one VM at a time, every scenario
// once.
func (c *common) start() (*progress.Line, harness.Options) {
	p := progress.New(os.Stderr)
	var console io.Writer
	if c.verbose {
		console = os.Stderr
	}
	return p, harness.Options{Cache: c.cache, MakeJobs: c.jobs, Accel: c.accel, Console: console, VMs: 1, Count: 1, Log: p}
}

// accelFlag is --accel, checked as the flags are parsed.
type accelFlag struct{ a *vmtest.Accel }

func (f accelFlag) String() string {
	if f.a == nil {
		return vmtest.AccelAuto.String()
	}
	return f.a.String()
}

func (f accelFlag) Set(s string) error {
	a, err := vmtest.ParseAccel(s)
	if err == nil {
		*f.a = a
	}
	return err
}

func (c *common) outDir() (string, error) {
	dir := c.out
	if dir == "" {
		dir = filepath.Join("results", time.Now().Format("20060102-150405"))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("results directory: %w", err)
	}
	return dir, nil
}

// finish writes results.json, junit.xml and summary.md, prints the
// summary and returns the exit code: 2 when a kernel specification was
// wrong, 1 when a result is unexpected or the run was interrupted.
func finish(out *harness.Outcome, outDir string, interrupted error) (int, error) {
	if err := save(out.Run, outDir); err != nil {
		return exitFail, err
	}
	fmt.Printf("\nresults: %s\n", outDir)
	if interrupted != nil {
		return exitFail, interrupted
	}
	if out.BadSpec() {
		return exitUsage, nil // the harness showed the error
	}
	if !out.Run.AllAsExpected() {
		return exitFail, nil
	}
	return exitOK, nil
}

// save writes the files of run, with the command line that made it, into
// outDir and prints its summary.
func save(run *report.Run, outDir string) error {
	run.Command = os.Args
	if err := run.WriteFiles(outDir); err != nil {
		return err
	}
	run.WriteSummary(os.Stdout)
	return nil
}

// parseError is the exit code and error of a failed flag parse: -h is no
// error.
func parseError(err error) (int, error) {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK, nil
	}
	return exitUsage, usageError{err}
}

// isSet reports whether the flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseArgs parses args with fs, taking flags wherever they are among the
// operands ("fusevm bisect series v1 v2 --out dir" as well as "--out dir
// v1 v2"): the standard flag package stops at the first operand. "--"
// ends the flags; what follows it is operands.
// -h prints the command's flags on stdout (and gives flag.ErrHelp, which
// parseError turns into exit 0); a bad flag prints nothing here: the caller
// reports it in one line.
func parseArgs(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(reorder(fs, args))
	if errors.Is(err, flag.ErrHelp) {
		fmt.Printf("usage: fusevm %s [flags] [operands]\n\nflags:\n", fs.Name())
		fs.SetOutput(os.Stdout)
		fs.PrintDefaults()
	}
	return err
}

// reorder moves the flags of args (with the values of those that take
// one) before its operands, keeping the order within each.
func reorder(fs *flag.FlagSet, args []string) []string {
	var flags, operands []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			operands = append(operands, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // flag.Parse reports it
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	return append(append(flags, "--"), operands...)
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, " ") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
