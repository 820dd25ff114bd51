package script

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds the parser arbitrary scripts, seeded with the built-in
// scenarios: it must not panic; a script it accepts has a name, a positive
// timeout and only steps of known ops with their line numbers; one it
// refuses says where (file:line).
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "*.fvm"))
	for _, p := range files {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(string(data))
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse("fuzz", "fuzz.fvm", text)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.fvm") {
				t.Fatalf("error without its file: %v", err)
			}
			return
		}
		if s.Name != "fuzz" || s.Timeout <= 0 {
			t.Fatalf("accepted script with name %q, timeout %v", s.Name, s.Timeout)
		}
		var walk func([]*Step)
		walk = func(steps []*Step) {
			for _, st := range steps {
				if _, ok := Ops[st.Op]; !ok && st.Op != "thread" {
					t.Fatalf("accepted unknown op %q", st.Op)
				}
				if st.Line < 1 {
					t.Fatalf("step %q without a line", st.Op)
				}
				walk(st.Body)
			}
		}
		walk(s.Steps)
	})
}
