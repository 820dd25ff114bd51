// Command testinit is a minimal /init for vmtest's own tests and
// benchmarks. Its behaviour is chosen by the kernel command line parameter
// fusevm_test=MODE, which the kernel passes to init as an environment
// variable:
//
//	echo      say hello on the event port, echo the first host line back
//	          as a log event, say done, power off
//	hello     say hello, power off
//	silent    print a line, then sleep forever without a hello
//	exit      exit, so the kernel panics ("Attempted to kill init!")
//	poweroff  power off at once (the raw-boot benchmark)
//
// Like every guest program it imports no host package, only the shared
// event schema.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"fusevm/events"
)

func main() {
	mode := os.Getenv("fusevm_test")
	if mode == "" {
		mode = "echo"
	}
	if mode == "poweroff" {
		powerOff()
	}
	for _, m := range []struct{ src, dst, fs string }{
		{"devtmpfs", "/dev", "devtmpfs"},
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		os.MkdirAll(m.dst, 0o755)
		if err := unix.Mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			fmt.Printf("testinit: mount %s: %v\n", m.dst, err)
		}
	}
	fmt.Printf("testinit: mode=%s\n", mode)
	switch mode {
	case "silent":
		for {
			time.Sleep(time.Hour)
		}
	case "exit":
		os.Exit(1)
	}

	port, err := findPort(10 * time.Second)
	if err != nil {
		fmt.Printf("testinit: %v\n", err)
		powerOff()
	}
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		fmt.Printf("testinit: %v\n", err)
		powerOff()
	}
	w := events.NewWriter(f)
	var uts unix.Utsname
	unix.Uname(&uts)
	w.Write(events.Event{Time: time.Now(), Kind: events.Hello, Detail: unix.ByteSliceToString(uts.Release[:])})
	if mode == "echo" {
		line, err := bufio.NewReader(f).ReadString('\n')
		if err != nil {
			fmt.Printf("testinit: read: %v\n", err)
		}
		w.Write(events.Event{Time: time.Now(), Kind: events.Log, Detail: strings.TrimSpace(line)})
		w.Write(events.Event{Time: time.Now(), Kind: events.Done})
	}
	// Give the port a moment to hand the last line to QEMU.
	time.Sleep(100 * time.Millisecond)
	powerOff()
}

// findPort returns the /dev node of the virtio-serial port named
// events.PortName.
func findPort(wait time.Duration) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err == nil && strings.TrimSpace(string(b)) == events.PortName {
				return "/dev/" + filepath.Base(filepath.Dir(n)), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio port named %s", events.PortName)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func powerOff() {
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Printf("testinit: power off: %v\n", err)
	}
	// Without ACPI power-off halts; a reboot ends QEMU under -no-reboot.
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	for {
		time.Sleep(time.Hour)
	}
}
