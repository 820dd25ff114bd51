package vmtest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fusevm/events"
)

// fakeInteractive is the fake QEMU of an interactive boot: the guest says
// hello, prints the plan it got and its kernel command line on the
// console, then echoes what is typed until "poweroff".
func fakeInteractive(ev net.Conn, args []string) int {
	w := events.NewWriter(ev)
	w.Write(events.Event{Time: time.Now(), Kind: events.Hello, Detail: "fake"})
	line, err := bufio.NewReader(ev).ReadString('\n')
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake qemu: no plan:", err)
		return 1
	}
	fmt.Printf("plan: %s", line)
	if i := slices.Index(args, "-append"); i >= 0 {
		fmt.Printf("cmdline: %s\n", args[i+1])
	}
	w.Write(events.Event{Kind: events.Log, Detail: "shell ready"})
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		if sc.Text() == "poweroff" {
			fmt.Println("reboot: Power down")
			return 0
		}
		fmt.Printf("guest: %s\n", sc.Text())
	}
	return 3
}

func TestRunInteractive(t *testing.T) {
	qemu := fakeQEMUBinary(t, "interactive")
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "bzImage"), filepath.Join(dir, "initramfs.cpio")
	os.WriteFile(kernel, []byte("k"), 0o644)
	os.WriteFile(initrd, []byte("i"), 0o644)
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inR.Close()
	go func() {
		fmt.Fprint(inW, "ls /\npoweroff\n")
		inW.Close()
	}()
	var out strings.Builder
	var mu sync.Mutex
	var kinds []events.Kind
	plan := events.Plan{Claims: []string{"close_all_ioctl"}}
	err = RunInteractive(context.Background(), Terminal{In: inR, Out: &out, Err: &out}, plan,
		func(ev events.Event) { mu.Lock(); kinds = append(kinds, ev.Kind); mu.Unlock() },
		WithQEMU(qemu), WithKernel(kernel), WithInitramfs(initrd), WithAccel(AccelAuto),
		WithProbeCache(""), WithAppend("fusevm.shell"), WithGDB(4321), WithWorkDir(dir))
	if err != nil {
		t.Fatalf("RunInteractive: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{`plan: {"claims":["close_all_ioctl"]`, "nokaslr fusevm.shell", "guest: ls /", "reboot: Power down"} {
		if !strings.Contains(got, want) {
			t.Errorf("console lacks %q:\n%s", want, got)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Contains(kinds, events.Hello) || !slices.Contains(kinds, events.Log) {
		t.Errorf("events seen: %v, want hello and log", kinds)
	}
}

func TestRunInteractiveQEMUFails(t *testing.T) {
	qemu := fakeQEMUBinary(t, "fail")
	dir := t.TempDir()
	kernel := filepath.Join(dir, "bzImage")
	os.WriteFile(kernel, []byte("k"), 0o644)
	var out strings.Builder
	err := RunInteractive(context.Background(), Terminal{Out: &out, Err: &out}, nil, nil,
		WithQEMU(qemu), WithKernel(kernel), WithInitramfs(kernel), WithAccel(AccelTCG), WithWorkDir(dir))
	if err == nil || !strings.Contains(out.String(), "could not open kernel file") {
		t.Fatalf("err %v, output %q: want QEMU's failure", err, out.String())
	}
}

func TestStartRefusesInteractive(t *testing.T) {
	_, err := Start(context.Background(), WithKernel("k"), WithInitramfs("i"), WithInteractive())
	if err == nil || !strings.Contains(err.Error(), "RunInteractive") {
		t.Fatalf("Start with WithInteractive: %v", err)
	}
}

func TestResolveAccel(t *testing.T) {
	ctx := context.Background()
	if a, _ := ResolveAccel(ctx, WithAccel(AccelKVM)); a != AccelKVM {
		t.Errorf("requested kvm: got %v", a)
	}
	if a, _ := ResolveAccel(ctx, WithAccel(AccelTCG)); a != AccelTCG {
		t.Errorf("requested tcg: got %v", a)
	}
	// No probe cache: auto never probes here, it takes TCG.
	noKVM := func(c *config) { c.kvmUsable = func() error { return fmt.Errorf("no /dev/kvm") } }
	if a, note := ResolveAccel(ctx, WithAccel(AccelAuto), noKVM); a != AccelTCG || !strings.Contains(note, "no /dev/kvm") {
		t.Errorf("auto without kvm: got %v (%s)", a, note)
	}
}
