package splat

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// captureFrom names fusevm results directories whose consoles become golden
// logs: go test ./vmtest/splat -run TestCapture -args -capture=DIR[,DIR...].
// Each result of a fault-* scenario (testdata/fault-scenarios, on a kernel
// built with testdata/fault-series) writes testdata/<kernel>-<config>-<fault>.log:
// a header saying which kernel, config and trigger produced it and what
// the scanner reads in it now, then the VM's console as it was. Review the
// titles before committing: the header is the expectation TestGolden holds
// the scanner to from then on.
var captureFrom = flag.String("capture", "", "results directories to turn into golden logs")

// resultsFile is the part of fusevm's results.json the capture reads.
type resultsFile struct {
	Kernels []struct {
		Name     string   `json:"name"`
		Spec     string   `json:"spec"`
		Variant  string   `json:"variant"`
		Config   string   `json:"config"`
		Identity string   `json:"identity"`
		Version  string   `json:"version"`
		Patches  []string `json:"patches"`
	} `json:"kernels"`
	Results []struct {
		Kernel     string `json:"kernel"`
		Config     string `json:"config"`
		Scenario   string `json:"scenario"`
		ConsoleLog string `json:"console_log"`
	} `json:"results"`
}

var descriptionRe = regexp.MustCompile(`(?m)^description: (.*)$`)

func TestCapture(t *testing.T) {
	if *captureFrom == "" {
		t.Skip("no -capture directories")
	}
	for _, dir := range strings.Split(*captureFrom, ",") {
		data, err := os.ReadFile(filepath.Join(dir, "results.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rf resultsFile
		if err := json.Unmarshal(data, &rf); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		if len(rf.Kernels) != 1 {
			t.Fatalf("%s: want one kernel variant, got %d", dir, len(rf.Kernels))
		}
		k := rf.Kernels[0]
		for _, r := range rf.Results {
			if !strings.HasPrefix(r.Scenario, "fault-") || r.ConsoleLog == "" {
				continue
			}
			fvm, err := os.ReadFile(filepath.Join("..", "..", "testdata", "fault-scenarios", r.Scenario+".fvm"))
			if err != nil {
				t.Fatal(err)
			}
			trigger := r.Scenario
			if m := descriptionRe.FindSubmatch(fvm); m != nil {
				trigger += ": " + string(m[1])
			}
			console, err := os.ReadFile(r.ConsoleLog)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "KERNEL: %s %s (%s), built by fusevm with %s\n", k.Name, k.Version, k.Identity, strings.Join(k.Patches, ", "))
			config := k.Config
			if config == "" {
				config = "the prebuilt kernel's own"
			}
			fmt.Fprintf(&b, "CONFIG: %s\n", config)
			fmt.Fprintf(&b, "TRIGGER: %s\n", trigger)
			reps := Scan(console)
			if len(reps) == 0 {
				b.WriteString("TITLE: NONE\n")
			}
			by := ScanByScenario(console)
			for _, rep := range reps {
				fmt.Fprintf(&b, "TITLE: %s\nKIND: %s\n", rep.Title, rep.Kind)
				for sc, rs := range by {
					for _, x := range rs {
						if x.Offset == rep.Offset && sc != "" {
							fmt.Fprintf(&b, "SCENARIO: %s\n", sc)
						}
					}
				}
			}
			b.WriteString("\n")
			b.Write(console)
			cfg := "prebuilt"
			if k.Config != "" {
				cfg = strings.NewReplacer("+", "-", "/", "_", ".config", "").Replace(k.Config)
			}
			name := fmt.Sprintf("%s-%s-%s.log", k.Name, cfg, strings.TrimPrefix(r.Scenario, "fault-"))
			if err := os.WriteFile(filepath.Join("testdata", name), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote testdata/%s (%d reports)", name, len(reps))
		}
	}
}
