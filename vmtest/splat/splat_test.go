package splat

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// golden is the expectation header of a testdata log: where it comes from,
//
//	KERNEL: <name, version, exact revision, patches>
//	CONFIG: <config set>
//	TRIGGER: <the fault scenario that produced it>
//
// (every log is the console of a kernel fusevm built, written by
// TestCapture), then groups of
//
//	TITLE: <title>      (or "TITLE: NONE" for a clean log)
//	KIND: <kind>
//	SCENARIO: <name>    (optional; absent or empty means outside any scenario)
//
// then one empty line, then the console log.
type golden struct {
	Title, Kind, Scenario string
}

func parseGolden(t *testing.T, data []byte) ([]golden, []byte) {
	t.Helper()
	var want []golden
	provenance := map[string]bool{}
	rest := data
	for {
		nl := bytes.IndexByte(rest, '\n')
		if nl < 0 {
			t.Fatal("no empty line after the header")
		}
		ln := strings.TrimRight(string(rest[:nl]), "\r")
		rest = rest[nl+1:]
		if ln == "" {
			break
		}
		key, val, ok := strings.Cut(ln, ":")
		if !ok {
			t.Fatalf("bad header line %q", ln)
		}
		val = strings.TrimSpace(val)
		switch key {
		case "TITLE":
			if val != "NONE" {
				want = append(want, golden{Title: val})
			}
		case "KERNEL", "CONFIG", "TRIGGER":
			provenance[key] = val != ""
		case "KIND", "SCENARIO":
			if len(want) == 0 {
				t.Fatalf("%s before TITLE", key)
			}
			if key == "KIND" {
				want[len(want)-1].Kind = val
			} else {
				want[len(want)-1].Scenario = val
			}
		default:
			t.Fatalf("unknown header %q", key)
		}
	}
	if !provenance["KERNEL"] || !provenance["CONFIG"] || !provenance["TRIGGER"] {
		t.Fatal("header lacks KERNEL, CONFIG or TRIGGER: golden logs come from kernels fusevm built")
	}
	return want, rest
}

// TestGolden walks testdata: every file is one console log headed by the
// splats it must yield. A new splat shape is a new file, not a new test.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.log"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden logs: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".log"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want, console := parseGolden(t, data)
			got := Scan(console)
			if len(got) != len(want) {
				for _, r := range got {
					t.Logf("got %s: %q", r.Kind, r.Title)
				}
				t.Fatalf("got %d reports, want %d", len(got), len(want))
			}
			byScenario := ScanByScenario(console)
			for i, r := range got {
				w := want[i]
				if r.Title != w.Title || string(r.Kind) != w.Kind {
					t.Errorf("report %d: got %s %q, want %s %q", i, r.Kind, r.Title, w.Kind, w.Title)
				}
				first, _, _ := strings.Cut(r.Text, "\n")
				at := strings.ReplaceAll(string(console[r.Offset:]), "\r", "")
				if first == "" || !strings.HasPrefix(at, first) {
					t.Errorf("report %d: Offset %d does not point at the text's first line %q", i, r.Offset, first)
				}
				found := false
				for _, s := range byScenario[w.Scenario] {
					if s.Offset == r.Offset {
						found = true
					}
				}
				if !found {
					t.Errorf("report %d (%s) not attributed to scenario %q", i, r.Title, w.Scenario)
				}
			}
		})
	}
}

// TestTextBounds checks where splat texts start and end on two shapes.
func TestTextBounds(t *testing.T) {
	data, err := os.ReadFile("testdata/kasan_uaf_idr.log")
	if err != nil {
		t.Fatal(err)
	}
	_, console := parseGolden(t, data)
	r := Scan(console)[0]
	lines := strings.Split(strings.TrimSuffix(r.Text, "\n"), "\n")
	if !strings.HasSuffix(lines[0], "=====") || !strings.Contains(lines[1], "BUG: KASAN") {
		t.Errorf("KASAN text starts with %q, %q; want the ruler then the header", lines[0], lines[1])
	}
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, "=====") {
		t.Errorf("KASAN text ends with %q, want the closing ruler", last)
	}
	if strings.Contains(r.Text, "Disabling lock debugging") || strings.Contains(r.Text, "scenario closeall-race end") {
		t.Error("KASAN text runs past its closing ruler")
	}

	data, err = os.ReadFile("testdata/hung_task.log")
	if err != nil {
		t.Fatal(err)
	}
	_, console = parseGolden(t, data)
	r = Scan(console)[0]
	if !strings.HasSuffix(strings.TrimSpace(r.Text), "</TASK>") {
		t.Errorf("hung task text should end at </TASK>:\n%s", r.Text)
	}
}

func TestCarriageReturnsAndCallerID(t *testing.T) {
	console := "[    2.000000][    T1] ------------[ cut here ]------------\r\n" +
		"[    2.000001][    T1] WARNING: CPU: 0 PID: 1 at fs/fuse/dev.c:10 fuse_dev_do_read.isra.0+0x10/0x20\r\n" +
		"[    2.000002][    T1] Call Trace:\r\n" +
		"[    2.000003][    T1] ---[ end trace 0000000000000000 ]---\r\n"
	got := Scan([]byte(console))
	if len(got) != 1 || got[0].Title != "WARNING in fuse_dev_do_read" || got[0].Offset != 0 {
		t.Fatalf("got %+v", got)
	}
	if strings.Contains(got[0].Text, "\r") {
		t.Error("text keeps carriage returns")
	}
}

func TestEmpty(t *testing.T) {
	if r := Scan(nil); len(r) != 0 {
		t.Fatalf("Scan(nil) = %v", r)
	}
	if m := ScanByScenario([]byte("no newline at the end")); len(m) != 0 {
		t.Fatalf("ScanByScenario = %v", m)
	}
}

func TestSection(t *testing.T) {
	console := "[    1.000000] boot\n[    1.100000] fusevm: scenario a start\nline one\n[    1.200000] line two\n[    1.300000] fusevm: scenario a end\n[    1.400000] fusevm: scenario b start\nother\n"
	got := Section([]byte(console), "a")
	if len(got) != 2 || got[0] != "line one" || got[1] != "[    1.200000] line two" {
		t.Errorf("section a: %q", got)
	}
	if got := Section([]byte(console), "b"); len(got) != 1 || got[0] != "other" {
		t.Errorf("section b (no end marker): %q", got)
	}
}
