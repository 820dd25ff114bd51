package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"fusevm/execute"
	"fusevm/kernel"
	"fusevm/plan"
	"fusevm/report"
	"fusevm/vmtest"
)

// What a results directory records so that a cell can be run again and
// a failed build read after the next build has overwritten its
// workspace: the boot of each variant (report.Kernel.Boot), each VM's QEMU
// command line (VMsFile beside its console logs), and the log of a build
// that failed (BuildLogFile and BuildTailFile in the variant's directory).
const (
	VMsFile       = "vms.json"
	BuildLogFile  = "build.log"
	BuildTailFile = "build-tail.log"
)

// variantDir is where a variant's console logs and files go.
func (h *Harness) variantDir(v *plan.Variant, outDir string) string {
	if h.Subdirs {
		return filepath.Join(outDir, v.Dir())
	}
	return outDir
}

// bootRecord is how v's VMs boot b.
func bootRecord(v *plan.Variant, b *Bootable) *report.Boot {
	return &report.Boot{
		Kernel: b.Kernel, Vmlinux: b.Vmlinux, Initramfs: b.Initramfs,
		Cmdline: vmtest.Cmdline(vmtest.WithAppend(v.Boot.Cmdline...)),
		Append:  slices.Clone(v.Boot.Cmdline), CPUs: v.Boot.CPUs, Params: v.Params,
	}
}

// keepBuildLog copies the log of a build that failed (err holds a
// *kernel.BuildError naming it) into dir, points the error at the copy,
// and records both in info. The workspace's log is overwritten by the
// next build of that source.
func keepBuildLog(err error, dir string, info *report.Kernel) error {
	var be *kernel.BuildError
	if !errors.As(err, &be) {
		return nil
	}
	info.BuildLogTail = be.Tail
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if be.Tail != "" {
		if err := os.WriteFile(filepath.Join(dir, BuildTailFile), []byte(be.Tail), 0o644); err != nil {
			return err
		}
	}
	if be.Log == "" {
		return nil
	}
	dst := filepath.Join(dir, BuildLogFile)
	if err := kernel.CopyFile(be.Log, dst, 0o666); err != nil {
		return fmt.Errorf("keep the build log: %w", err)
	}
	if abs, err := filepath.Abs(dst); err == nil {
		dst = abs
	}
	be.Log, info.BuildLog = dst, dst
	return nil
}

// writeVMs writes dir/vms.json: each VM of o with its QEMU command line,
// the images it booted and the scenarios it settled.
func writeVMs(dir string, job execute.Job, o *execute.Outcome) error {
	var vms []report.VM
	for _, vm := range o.VMs {
		if vm == nil {
			continue
		}
		rec := report.VM{
			ConsoleLog: vm.ConsoleLog, Accel: vm.Accel.String(), Exit: vm.Exit.String(),
			Argv: vm.Argv, Cmdline: vm.Cmdline,
			Kernel: job.Kernel, Vmlinux: job.Vmlinux, Initramfs: job.Initramfs,
			Scenarios: []string{},
		}
		if vm.Err != nil {
			rec.Error = vm.Err.Error()
		}
		for _, r := range slices.Concat(o.Results, o.Boot) {
			if r.ConsoleLog == vm.ConsoleLog && !slices.Contains(rec.Scenarios, r.Scenario) {
				rec.Scenarios = append(rec.Scenarios, r.Scenario)
			}
		}
		vms = append(vms, rec)
	}
	data, err := json.MarshalIndent(vms, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, VMsFile), append(data, '\n'), 0o644)
}
