package plan

import (
	"fmt"
	"os"
	"strings"

	"github.com/BurntSushi/toml"
)

// tomlFile is a decoded TOML file kept as lines, so that errors found
// after decoding can name the line at fault.
type tomlFile struct {
	path  string
	lines []string
}

// openFile reads the TOML file at path, for its lines.
func openFile(path string) (*tomlFile, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	return &tomlFile{path: path, lines: strings.Split(string(data), "\n")}, string(data), nil
}

// decodeFile decodes the TOML file at path into v, refusing keys v does
// not have.
func decodeFile(path string, v any) (*tomlFile, error) {
	f, data, err := openFile(path)
	if err != nil {
		return nil, err
	}
	md, err := toml.Decode(data, v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		key := und[0]
		return nil, f.errorf(f.assignment(0, key[len(key)-1]), "unknown key %s", key)
	}
	return f, nil
}

// errorf makes an error that starts with path:line (path alone when line
// is 0, unknown).
func (f *tomlFile) errorf(line int, format string, a ...any) error {
	where := f.path
	if line > 0 {
		where = fmt.Sprintf("%s:%d", f.path, line)
	}
	return fmt.Errorf("%s: %s", where, fmt.Sprintf(format, a...))
}

// tables returns the 1-based lines of the [[name]] headers, in file order,
// which is the order of the decoded array of tables.
func (f *tomlFile) tables(name string) []int {
	var out []int
	for i, l := range f.lines {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "[[") {
			continue
		}
		header, _, _ := strings.Cut(l[2:], "]]")
		if strings.TrimSpace(header) == name {
			out = append(out, i+1)
		}
	}
	return out
}

// table returns the line of the i-th [[name]] header, or 0 when the file
// has fewer.
func (f *tomlFile) table(name string, i int) int {
	if t := f.tables(name); i < len(t) {
		return t[i]
	}
	return 0
}

// assignment returns the line that sets key in the table whose header is
// at line start (the top level when start is 0); start itself when that
// table does not set key.
func (f *tomlFile) assignment(start int, key string) int {
	for i := start; i < len(f.lines); i++ {
		l := strings.TrimSpace(f.lines[i])
		if strings.HasPrefix(l, "[") && start > 0 {
			break
		}
		if k, _, ok := strings.Cut(l, "="); ok && strings.TrimSpace(k) == key {
			return i + 1
		}
	}
	return start
}
