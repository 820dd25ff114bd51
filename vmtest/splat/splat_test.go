package splat

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
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

// readConsole returns the console of a golden log, without its header.
func readConsole(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	_, console := parseGolden(t, data)
	return string(console)
}

// TestTextBounds checks where report texts start and end on two shapes.
func TestTextBounds(t *testing.T) {
	r := Scan([]byte(readConsole(t, "debian-7.3-base-debug-uaf.log")))[0]
	lines := strings.Split(strings.TrimSuffix(r.Text, "\n"), "\n")
	if !strings.HasSuffix(lines[0], "=====") || !strings.Contains(lines[1], "BUG: KASAN") {
		t.Errorf("KASAN text starts with %q, %q; want the ruler then the header", lines[0], lines[1])
	}
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, "=====") {
		t.Errorf("KASAN text ends with %q, want the closing ruler", last)
	}
	if strings.Contains(r.Text, "Disabling lock debugging") || strings.Contains(r.Text, "scenario fault-uaf end") {
		t.Error("KASAN text runs past its closing ruler")
	}

	r = Scan([]byte(readConsole(t, "debian-7.3-base-hung.log")))[0]
	if !strings.HasSuffix(strings.TrimSpace(r.Text), "</TASK>") {
		t.Errorf("hung task text should end at </TASK>:\n%s", r.Text)
	}
}

// TestFailClosed damages real reports into shapes no kernel printed yet:
// each must still be a report of the scenario it happened in, titled by
// its first telling line.
func TestFailClosed(t *testing.T) {
	warn := readConsole(t, "debian-7.3-base-warn.log")
	header := regexp.MustCompile(`(?m)WARNING: fs/fuse/backing\.c:\d+ at fusevm_fault_inject\+0x[0-9a-f]+/0x[0-9a-f]+, CPU#\d+: init/\d+`)
	if !header.MatchString(warn) {
		t.Fatal("the WARN golden log lost its header line")
	}
	cases := []struct {
		name, console, title string
	}{
		{"new WARNING shape", header.ReplaceAllString(warn, "WARNING: a shape no kernel printed yet"),
			"unrecognised kernel report: WARNING: a shape no kernel printed yet"},
		{"header lost, marker kept", header.ReplaceAllString(warn, "something odd"),
			"unrecognised kernel report: something odd"},
		{"new refcount message", header.ReplaceAllString(warn, "refcount_t: saturated in a new way"),
			"unrecognised kernel report: refcount_t: saturated in a new way"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			by := ScanByScenario([]byte(tc.console))
			reps := by["fault-warn"]
			if len(reps) != 1 || reps[0].Kind != Unknown || reps[0].Title != tc.title {
				t.Fatalf("got %+v, want one %s report %q in fault-warn", reps, Unknown, tc.title)
			}
		})
	}
}

// TestUserspaceLinesAreNotReports: on a console the kernel stamps, an
// unstamped line that looks like a report is a program writing to the
// console, not the kernel.
func TestUserspaceLinesAreNotReports(t *testing.T) {
	clean := readConsole(t, "debian-7.3-base-lockdep.log")
	if reps := Scan([]byte(clean)); len(reps) != 0 {
		t.Fatalf("the clean golden log has reports: %+v", reps)
	}
	noisy := afterLine(t, clean, "fusevm: scenario fault-lockdep end", "WARNING: userspace talking\nBUG: userspace again\nKernel panic is a phrase\n")
	if reps := Scan([]byte(noisy)); len(reps) != 0 {
		t.Errorf("unstamped lines taken for reports: %+v", reps)
	}
	stamped := afterLine(t, clean, "fusevm: scenario fault-lockdep end", "[    9.000000] WARNING: the kernel this time\n")
	if reps := Scan([]byte(stamped)); len(reps) != 1 || reps[0].Kind != Unknown {
		t.Errorf("a stamped report line was missed: %+v", reps)
	}
}

// afterLine inserts text after the console line containing marker.
func afterLine(t *testing.T, console, marker, text string) string {
	t.Helper()
	i := strings.Index(console, marker)
	if i < 0 {
		t.Fatalf("no line %q in the console", marker)
	}
	end := i + strings.IndexByte(console[i:], '\n') + 1
	return console[:end] + text + console[end:]
}

// TestCarriageReturnsAndCallerID reads a real report again with CRLF line
// ends and printk caller ids, as other consoles print them.
func TestCarriageReturnsAndCallerID(t *testing.T) {
	warn := readConsole(t, "debian-7.3-base-warn.log")
	want := Scan([]byte(warn))
	stamp := regexp.MustCompile(`(?m)^(\[\s*\d+\.\d{6}\])`)
	crlf := strings.ReplaceAll(stamp.ReplaceAllString(warn, "$1[    T1]"), "\n", "\r\n")
	got := Scan([]byte(crlf))
	if len(got) != len(want) || got[0].Title != want[0].Title {
		t.Fatalf("got %+v, want %+v", got, want)
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
