package vmtest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestArgv(t *testing.T) {
	base := []Option{WithKernel("/k/bzImage"), WithInitramfs("/k/initramfs.cpio"), WithWorkDir("/run/vm")}
	tail := []string{
		"-chardev", "stdio,id=con,signal=off",
		"-serial", "chardev:con",
		"-device", "pvpanic-pci",
		"-action", "panic=exit-failure",
		"-qmp", "unix:/run/vm/qmp.sock,server=on,wait=off",
		"-device", "virtio-serial-pci,id=vser0,max_ports=2",
		"-chardev", "socket,id=ev,path=/run/vm/events.sock",
		"-device", "virtserialport,bus=vser0.0,chardev=ev,name=fusevm.events",
	}
	tests := []struct {
		name string
		opts []Option
		want []string
	}{
		{
			name: "tcg defaults",
			opts: []Option{WithAccel(AccelTCG)},
			want: slices.Concat([]string{"qemu-system-x86_64",
				"-nodefaults", "-display", "none", "-no-reboot", "-machine", "pc",
				"-accel", "tcg,thread=multi", "-cpu", "max",
				"-smp", "2", "-m", "512",
				"-kernel", "/k/bzImage", "-initrd", "/k/initramfs.cpio",
				"-append", "console=ttyS0 panic=-1 oops=panic printk.devkmsg=on softlockup_panic=1 watchdog_thresh=5 pci=noacpi pty.legacy_count=0 i8042.noaux i8042.nokbd",
			}, tail),
		},
		{
			name: "kvm, sizes, extra cmdline, own binary",
			opts: []Option{WithAccel(AccelKVM), WithCPUs(4), WithMemoryMB(1024),
				WithAppend("slub_debug=FZPU", "kasan_multi_shot"), WithAppend("fusevm_mode=run"),
				WithQEMU("/opt/qemu/bin/qemu-system-x86_64")},
			want: slices.Concat([]string{"/opt/qemu/bin/qemu-system-x86_64",
				"-nodefaults", "-display", "none", "-no-reboot", "-machine", "pc",
				"-accel", "kvm", "-cpu", "host",
				"-smp", "4", "-m", "1024",
				"-kernel", "/k/bzImage", "-initrd", "/k/initramfs.cpio",
				"-append", "console=ttyS0 panic=-1 oops=panic printk.devkmsg=on softlockup_panic=1 watchdog_thresh=5 pci=noacpi pty.legacy_count=0 i8042.noaux i8042.nokbd slub_debug=FZPU kasan_multi_shot fusevm_mode=run",
			}, tail),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Argv(append(slices.Clone(base), tt.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("argv mismatch\n got: %q\nwant: %q", got, tt.want)
			}
		})
	}
}

func TestArgvNeverPanicsOnWarn(t *testing.T) {
	got, err := Argv(WithKernel("k"), WithInitramfs("i"), WithWorkDir("/w"), WithAccel(AccelTCG))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(got, " "), "panic_on_warn") {
		t.Error("panic_on_warn on the command line: a WARNING must not end the VM")
	}
}

func TestArgvEscapesCommas(t *testing.T) {
	got, err := Argv(WithKernel("k"), WithInitramfs("i"), WithWorkDir("/tmp/a,b"), WithAccel(AccelTCG))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, "unix:/tmp/a,,b/qmp.sock,server=on,wait=off") ||
		!slices.Contains(got, "socket,id=ev,path=/tmp/a,,b/events.sock") {
		t.Errorf("commas not doubled: %q", got)
	}
}

func TestArgvErrors(t *testing.T) {
	ok := []Option{WithKernel("k"), WithInitramfs("i"), WithWorkDir("/w"), WithAccel(AccelTCG)}
	tests := []struct {
		name string
		opts []Option
		want string
	}{
		{"auto accel", []Option{WithAccel(AccelAuto)}, "concrete accelerator"},
		{"no kernel", []Option{WithKernel("")}, "no kernel"},
		{"no initramfs", []Option{WithInitramfs("")}, "no initramfs"},
		{"no work dir", []Option{WithWorkDir("")}, "WithWorkDir"},
		{"zero cpus", []Option{WithCPUs(0)}, "CPUs"},
		{"tiny memory", []Option{WithMemoryMB(16)}, "memory"},
		{"long socket path", []Option{WithWorkDir("/" + strings.Repeat("d", 120))}, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Argv(append(slices.Clone(ok), tt.opts...)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEffectiveTimeouts(t *testing.T) {
	c := newConfig([]Option{WithProbeCache("")})
	kvm := c.effectiveTimeouts(AccelKVM)
	tcg := c.effectiveTimeouts(AccelTCG)
	if kvm.Boot != DefaultBootTimeout || tcg.Boot != TCGFactor*DefaultBootTimeout ||
		tcg.Silence != TCGFactor*DefaultSilenceTimeout || tcg.Overall != TCGFactor*DefaultOverallTimeout {
		t.Errorf("defaults: kvm %+v tcg %+v", kvm, tcg)
	}
	c = newConfig([]Option{WithTimeouts(Timeouts{Boot: 5 * time.Second, Silence: -1})})
	tcg = c.effectiveTimeouts(AccelTCG)
	if tcg.Boot != 5*time.Second || tcg.Silence != 0 || tcg.Overall != TCGFactor*DefaultOverallTimeout {
		t.Errorf("explicit: %+v", tcg)
	}
}

func TestParseAccel(t *testing.T) {
	for _, a := range []Accel{AccelAuto, AccelKVM, AccelTCG} {
		if got, err := ParseAccel(a.String()); err != nil || got != a {
			t.Errorf("ParseAccel(%q) = %v, %v", a.String(), got, err)
		}
	}
	if _, err := ParseAccel("hvf"); err == nil {
		t.Error("ParseAccel(hvf) succeeded")
	}
}

func TestMissingQEMUNamesThePackage(t *testing.T) {
	dir := t.TempDir()
	k, i := filepath.Join(dir, "bzImage"), filepath.Join(dir, "initramfs")
	os.WriteFile(k, []byte("k"), 0o644)
	os.WriteFile(i, []byte("i"), 0o644)
	_, err := Start(context.Background(), WithKernel(k), WithInitramfs(i), WithQEMU("/nonexistent/qemu-system-x86_64"), WithWorkDir(dir))
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y qemu-system-x86") {
		t.Errorf("got %v", err)
	}
}

func TestArgvGDBAndInteractive(t *testing.T) {
	got, err := Argv(WithKernel("/k/bzImage"), WithInitramfs("/k/i.cpio"), WithWorkDir("/run/vm"),
		WithAccel(AccelTCG), WithAppend("fusevm.shell"), WithGDB(1234), WithInteractive())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"qemu-system-x86_64",
		"-nodefaults", "-display", "none", "-no-reboot", "-machine", "pc",
		"-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", "2", "-m", "512",
		"-kernel", "/k/bzImage", "-initrd", "/k/i.cpio",
		"-append", "console=ttyS0 panic=-1 oops=panic printk.devkmsg=on softlockup_panic=1 watchdog_thresh=5 pci=noacpi pty.legacy_count=0 i8042.noaux i8042.nokbd nokaslr fusevm.shell",
		"-chardev", "stdio,id=con,mux=on,signal=off",
		"-serial", "chardev:con",
		"-mon", "chardev=con,mode=readline",
		"-device", "pvpanic-pci",
		"-action", "panic=exit-failure",
		"-qmp", "unix:/run/vm/qmp.sock,server=on,wait=off",
		"-device", "virtio-serial-pci,id=vser0,max_ports=2",
		"-chardev", "socket,id=ev,path=/run/vm/events.sock",
		"-device", "virtserialport,bus=vser0.0,chardev=ev,name=fusevm.events",
		"-gdb", "tcp::1234", "-S",
	}
	if !slices.Equal(got, want) {
		t.Errorf("argv mismatch\n got: %q\nwant: %q", got, want)
	}
	if c := Cmdline(WithGDB(1), WithAppend("a")); c != BaseCmdline+" nokaslr a" {
		t.Errorf("Cmdline = %q", c)
	}
	if _, err := Argv(WithKernel("k"), WithInitramfs("i"), WithWorkDir("/w"), WithAccel(AccelTCG), WithGDB(70000)); err == nil {
		t.Error("gdb port 70000 accepted")
	}
}
