package events

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"fusevm/verdict"
)

// TestEncoding pins the lines of events.jsonl: a scenario's end carries
// its verdict as text, and the features event one object per feature.
func TestEncoding(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []Event{
		{Time: at, Kind: ScenarioEnd, Scenario: "stale-id", Verdict: verdict.Fail, Detail: "line 9: ioctl close-all: got ENOTTY, want ok"},
		{Time: at, Kind: Features, Features: []Feature{
			{Name: FeatureCloseAll, State: NotSupported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"},
			{Name: FeatureCloseMinusOne, State: Supported, Detail: "FUSE_DEV_IOC_BACKING_CLOSE(-1) closes all"},
			{Name: FeatureInodeCache, State: Unknown, Detail: "probing FOPEN_PASSTHROUGH_INODE_CACHE (bit 9): operation not permitted"},
		}},
	}
	var b bytes.Buffer
	w := NewWriter(&b)
	for _, ev := range evs {
		if err := w.Write(ev); err != nil {
			t.Fatal(err)
		}
	}
	want := `{"time":"2026-01-02T03:04:05Z","kind":"scenario_end","scenario":"stale-id","verdict":"FAIL","detail":"line 9: ioctl close-all: got ENOTTY, want ok"}
{"time":"2026-01-02T03:04:05Z","kind":"features","features":[{"name":"close_all_ioctl","state":"not_supported","detail":"FUSE_DEV_IOC_BACKING_CLOSE_ALL answers ENOTTY"},{"name":"close_all_minus_one","state":"supported","detail":"FUSE_DEV_IOC_BACKING_CLOSE(-1) closes all"},{"name":"inode_cache_flag","state":"unknown","detail":"probing FOPEN_PASSTHROUGH_INODE_CACHE (bit 9): operation not permitted"}]}
`
	if b.String() != want {
		t.Errorf("encoded\n%s\nwant\n%s", b.String(), want)
	}
	r := NewReader(&b)
	for _, ev := range evs {
		var got Event
		if err := r.Read(&got); err != nil || !reflect.DeepEqual(got, ev) {
			t.Errorf("decoded %+v, %v; want %+v", got, err, ev)
		}
	}
}
