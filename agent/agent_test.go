package agent

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"fusevm/events"
	"fusevm/fuseabi"
	"fusevm/fuseabi/fuseabitest"
)

// TestFeature maps the probes' convention onto the three answers.
func TestFeature(t *testing.T) {
	notThere := fmt.Errorf("FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY: %w", fuseabi.ErrNotSupported)
	for _, tc := range []struct {
		err  error
		want events.Feature
	}{
		{nil, events.Feature{Name: "x", State: events.Supported, Detail: "it works"}},
		{notThere, events.Feature{Name: "x", State: events.NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"}},
		{fmt.Errorf("probing x: %w", unix.EPERM), events.Feature{Name: "x", State: events.Unknown, Detail: "probing x: operation not permitted"}},
	} {
		if got := feature("x", "it works", tc.err); got != tc.want {
			t.Errorf("feature(%v) = %+v, want %+v", tc.err, got, tc.want)
		}
	}
}

// failingWriter fails every write after the first n.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, unix.EIO
	}
	w.n--
	return len(p), nil
}

// TestSenderKeepsFirstError: the first event that cannot be written is
// the run's error, and nothing is written after it.
func TestSenderKeepsFirstError(t *testing.T) {
	w := &failingWriter{n: 1}
	s := &sender{w: events.NewWriter(w)}
	if err := s.send(events.Event{Kind: events.Hello}); err != nil || s.failed() != nil {
		t.Fatalf("hello: %v", err)
	}
	err := s.send(events.Event{Kind: events.ScenarioStart, Scenario: "a"})
	if !errors.Is(err, unix.EIO) || err.Error() != "write scenario_start event to the host: input/output error" {
		t.Fatalf("scenario_start: %v", err)
	}
	w.n = 10
	if again := s.send(events.Event{Kind: events.ScenarioEnd}); again != err || s.failed() != err || w.n != 10 {
		t.Errorf("after the failure: %v, failed %v, %d writes", again, s.failed(), 10-w.n)
	}
}

// TestProbeFeaturesOnHost runs the agent's probes on the host, which is
// taken as unpatched (see fuseabi's TestProbesSayNoOnUnpatchedHost):
// every feature is reported as not supported, saying what the probe saw,
// and a bad inode_cache_bit makes that feature unknown.
func TestProbeFeaturesOnHost(t *testing.T) {
	fuseabitest.RequireUnpatchedHost(t)
	fs := probeFeatures(map[string]string{"inode_cache_bit": "9"})
	t.Logf("features:%s", featureStates(fs))
	for _, f := range fs {
		if strings.Contains(f.Detail, "offers no FUSE passthrough") {
			t.Skipf("kernel without FUSE passthrough: %s", f.Detail)
		}
	}
	want := []events.Feature{
		{Name: events.FeatureCloseAll, State: events.NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"},
		{Name: events.FeatureCloseMinusOne, State: events.NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE(-1) answers EINVAL"},
		{Name: events.FeatureInodeCache, State: events.NotSupported, Detail: "a passthrough reopen with FOPEN_PASSTHROUGH_INODE_CACHE (bit 9) and a closed backing id fails with EIO"},
	}
	if fmt.Sprint(fs) != fmt.Sprint(want) {
		t.Errorf("features\n%+v\nwant\n%+v", fs, want)
	}
	fs = probeFeatures(map[string]string{"inode_cache_bit": "32"})
	if f := fs[2]; f.State != events.Unknown || f.Detail != `plan parameter inode_cache_bit "32" is no bit number of the 32-bit open flags` {
		t.Errorf("bad bit: %+v", f)
	}
}
