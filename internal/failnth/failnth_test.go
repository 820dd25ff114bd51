package failnth

import (
	"errors"
	"os"
	"testing"
)

// TestDo checks both answers a kernel can give: with fault injection,
// the first allocation of an open fails and a call with fewer
// allocations than asked fails nothing; without, Do and Setup refuse
// with ErrUnavailable and run nothing.
func TestDo(t *testing.T) {
	if _, err := Do(0, func() error { return nil }); err == nil {
		t.Error("fail-nth 0 accepted")
	}
	if _, err := os.Stat("/proc/thread-self/fail-nth"); err != nil {
		ran := false
		_, err := Do(1, func() error { ran = true; return nil })
		if !errors.Is(err, ErrUnavailable) || ran {
			t.Errorf("Do without fault injection: err %v, ran %v; want ErrUnavailable and nothing run", err, ran)
		}
		if err := Setup(); !errors.Is(err, ErrUnavailable) {
			t.Errorf("Setup without fault injection: %v, want ErrUnavailable", err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("configuring failslab needs root")
	}
	if err := Setup(); err != nil {
		t.Fatal(err)
	}
	injected, err := Do(1, func() error {
		f, err := os.Open("/proc/self/status")
		if err == nil {
			f.Close()
		}
		return err
	})
	if !injected || err == nil {
		t.Errorf("open with its first allocation failing: injected %v, err %v; want a failure", injected, err)
	}
	injected, err = Do(1000, func() error { return nil })
	if injected || err != nil {
		t.Errorf("a call without allocations: injected %v, err %v; want neither", injected, err)
	}
}
