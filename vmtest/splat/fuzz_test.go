package splat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzScan feeds the scanner arbitrary consoles, seeded with the golden
// logs: it must not panic, every report must point inside the console at
// its own first line, and a console holding a line that starts a kernel
// report must never scan clean (fail closed).
func FuzzScan(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.log"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("[    1.000000] WARNING: something new\n"))
	f.Fuzz(func(t *testing.T, console []byte) {
		reps := Scan(console)
		for _, r := range reps {
			if r.Offset < 0 || r.Offset > len(console) {
				t.Fatalf("offset %d outside a console of %d bytes", r.Offset, len(console))
			}
			first, _, _ := strings.Cut(r.Text, "\n")
			at := strings.ReplaceAll(string(console[r.Offset:]), "\r", "")
			if !strings.HasPrefix(at, first) {
				t.Fatalf("report %q: offset does not point at its first line %q", r.Title, first)
			}
			if r.Title == "" || r.Kind == "" {
				t.Fatalf("report without title or kind: %+v", r)
			}
		}
		if len(reps) == 0 {
			s := newScanner(console)
			for i := range s.lines {
				if m, _ := s.match(i, nil); m != nil || s.startsUnknown(i) {
					t.Fatalf("line %q starts a report, yet the console scanned clean", s.lines[i].raw)
				}
			}
		}
	})
}
