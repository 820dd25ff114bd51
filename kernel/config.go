package kernel

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"fusevm/internal/lazyre"
)

// Option is one CONFIG_ assignment requested by a fragment.
type Option struct {
	Name  string // without the CONFIG_ prefix
	Value string // "y", "m", "n" (for "is not set"), a number or a quoted string
	From  string // file:line of the request
}

var (
	setRe   = lazyre.New(`^CONFIG_([A-Za-z0-9_]+)=(.*)$`)
	unsetRe = lazyre.New(`^# CONFIG_([A-Za-z0-9_]+) is not set$`)
)

// ParseFragment reads a config fragment. Lines are CONFIG_X=value,
// "# CONFIG_X is not set", comments or blank; anything else is an error
// naming file:line.
func ParseFragment(path string) ([]Option, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config fragment: %w", err)
	}
	var opts []Option
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		from := fmt.Sprintf("%s:%d", filepath.Base(path), i+1)
		if m := setRe().FindStringSubmatch(line); m != nil {
			if m[2] == "" {
				return nil, fmt.Errorf("config fragment %s: CONFIG_%s has no value", from, m[1])
			}
			opts = append(opts, Option{Name: m[1], Value: m[2], From: from})
			continue
		}
		if m := unsetRe().FindStringSubmatch(line); m != nil {
			opts = append(opts, Option{Name: m[1], Value: "n", From: from})
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		return nil, fmt.Errorf("config fragment %s: not a config line: %q", from, line)
	}
	return opts, nil
}

// MergeOptions flattens fragments in order; a later request for the same
// option wins.
func MergeOptions(fragments ...[]Option) []Option {
	idx := map[string]int{}
	var out []Option
	for _, frag := range fragments {
		for _, o := range frag {
			if i, ok := idx[o.Name]; ok {
				out[i] = o
				continue
			}
			idx[o.Name] = len(out)
			out = append(out, o)
		}
	}
	return out
}

// ReadConfig parses a .config into name -> value ("n" for unset options).
func ReadConfig(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if m := setRe().FindStringSubmatch(sc.Text()); m != nil {
			vals[m[1]] = m[2]
		} else if m := unsetRe().FindStringSubmatch(sc.Text()); m != nil {
			vals[m[1]] = "n"
		}
	}
	return vals, sc.Err()
}

// Mismatch is a requested option that olddefconfig changed.
type Mismatch struct {
	Option
	Got string // "n" when the option is unset or unknown
}

// ConfigError lists every requested option that did not survive.
type ConfigError struct{ Mismatches []Mismatch }

func (e *ConfigError) Error() string {
	var parts []string
	for _, m := range e.Mismatches {
		got := m.Got
		if got == "n" {
			got = "not set"
		}
		parts = append(parts, fmt.Sprintf("CONFIG_%s=%s (%s) became %s", m.Name, m.Value, m.From, got))
	}
	return "config options did not survive olddefconfig: " + strings.Join(parts, "; ")
}

// Validate checks that every requested option holds its value in cfg.
func Validate(cfg map[string]string, want []Option) error {
	var bad []Mismatch
	for _, o := range want {
		got, ok := cfg[o.Name]
		if !ok {
			got = "n"
		}
		if got != o.Value {
			bad = append(bad, Mismatch{Option: o, Got: got})
		}
	}
	if len(bad) == 0 {
		return nil
	}
	sort.Slice(bad, func(i, j int) bool { return bad[i].Name < bad[j].Name })
	return &ConfigError{Mismatches: bad}
}

// Configure writes outDir/.config: tinyconfig, then the merged fragment
// options, then olddefconfig, then Validate. srcDir is the kernel tree.
func Configure(ctx context.Context, srcDir, outDir string, want []Option, env []string) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	if err := runMake(ctx, srcDir, outDir, env, "tinyconfig"); err != nil {
		return err
	}
	cfgPath := filepath.Join(outDir, ".config")
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	requested := map[string]bool{}
	for _, o := range want {
		requested[o.Name] = true
	}
	var buf bytes.Buffer
	for _, line := range strings.Split(string(data), "\n") {
		if m := setRe().FindStringSubmatch(line); m != nil && requested[m[1]] {
			continue
		}
		if m := unsetRe().FindStringSubmatch(line); m != nil && requested[m[1]] {
			continue
		}
		if line != "" {
			buf.WriteString(line + "\n")
		}
	}
	for _, o := range want {
		if o.Value == "n" {
			fmt.Fprintf(&buf, "# CONFIG_%s is not set\n", o.Name)
		} else {
			fmt.Fprintf(&buf, "CONFIG_%s=%s\n", o.Name, o.Value)
		}
	}
	if err := os.WriteFile(cfgPath, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if err := runMake(ctx, srcDir, outDir, env, "olddefconfig"); err != nil {
		return err
	}
	got, err := ReadConfig(cfgPath)
	if err != nil {
		return err
	}
	return Validate(got, want)
}

// runMake runs a quick make target out of tree and returns its output's
// last line on failure.
func runMake(ctx context.Context, srcDir, outDir string, env []string, target string) error {
	cmd := exec.CommandContext(ctx, "make", "-s", "-C", srcDir, "O="+outDir, target)
	cmd.Env = append(os.Environ(), env...)
	killGroupOnCancel(cmd)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("make %s: %v: %s", target, err, lastLine(out))
	}
	return nil
}
