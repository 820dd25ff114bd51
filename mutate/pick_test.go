package mutate

import (
	"reflect"
	"strings"
	"testing"
)

// TestPick: numbers, names and IDs name the same mutant; a mutant keeps its
// name whatever is picked; unknown operators and mutants are errors.
func TestPick(t *testing.T) {
	_, all := loadMutants(t, "v2")
	if Name(3, len(all)) != "m03" || Name(3, 9) != "m3" || Name(12, 120) != "m012" {
		t.Errorf("names %s %s %s", Name(3, len(all)), Name(3, 9), Name(12, 120))
	}
	for _, ref := range []string{"3", "m03", "m3", all[2].ID} {
		if n, err := Number(all, ref); err != nil || n != 3 {
			t.Errorf("%s: %d, %v; want 3", ref, n, err)
		}
	}
	for _, ref := range []string{"0", "m999", "fs/fuse/nosuch.c:1:swap-eq"} {
		if _, err := Number(all, ref); err == nil || !strings.Contains(err.Error(), "no such mutant") {
			t.Errorf("%s: %v, want no such mutant", ref, err)
		}
	}
	ms, names, err := Pick(all, nil, []int{3, 1})
	if err != nil || len(ms) != 2 || ms[0].ID != all[0].ID || !reflect.DeepEqual(names, []string{"m01", "m03"}) {
		t.Errorf("numbers 3,1: %v %v %v", len(ms), names, err)
	}
	ms, names, err = Pick(all, []string{"drop-capable"}, nil)
	if err != nil || len(ms) != 1 || ms[0].Operator != "drop-capable" || names[0] != Name(indexOf(all, ms[0].ID)+1, len(all)) {
		t.Errorf("drop-capable: %v %v %v", ms, names, err)
	}
	if ms, names, _ := Pick(all, nil, nil); len(ms) != len(all) || names[len(names)-1] != Name(len(all), len(all)) {
		t.Errorf("no restriction: %d mutants, last %s", len(ms), names[len(names)-1])
	}
	if _, _, err := Pick(all, []string{"flip"}, nil); err == nil || !strings.Contains(err.Error(), `unknown operator "flip"`) {
		t.Errorf("unknown operator: %v", err)
	}
}

func indexOf(ms []Mutant, id string) int {
	for i, m := range ms {
		if m.ID == id {
			return i
		}
	}
	return -1
}
