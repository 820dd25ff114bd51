package plan

import (
	"errors"
	"fmt"
	"fusevm/scenarios/script"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fusevm/kernel"
)

// normalizeConfig writes a config set ("base+debug", fragment names or
// paths joined by "+") the one way known issues and reports compare it:
// blanks around the parts and empty parts dropped.
func normalizeConfig(config string) string {
	var parts []string
	for _, p := range strings.Split(config, "+") {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "+")
}

// fragments resolves a config set into fragment paths: a name is
// configs/kernel/NAME.config under root, a part with a '/' or '.' is a
// path. Every fragment must exist and parse.
func fragments(root, config string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(normalizeConfig(config), "+") {
		if n == "" {
			continue
		}
		p := n
		if !strings.ContainsAny(n, "/.") {
			p = filepath.Join(root, "configs", "kernel", n+".config")
		}
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("config fragment %q: %w", n, err)
		}
		if _, err := kernel.ParseFragment(p); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("config %q names no fragments", config)
	}
	return out, nil
}

// Boot are the settings a kernel boots with, beyond fusevm's own.
type Boot struct {
	// Cmdline holds extra kernel arguments.
	Cmdline []string
	// CPUs is the number of vCPUs; 0 for the default.
	CPUs int
	// Race caps the duration of every race block of the scenarios
	// (passed to the guest as the "race" parameter); 0 leaves the
	// scripts' durations.
	Race time.Duration
	// SlabSlack is added to every kernel-memory limit of the scenarios
	// (the guest's "slab_slack" parameter, in bytes): KASAN's quarantine
	// keeps freed objects in the slab for a while.
	SlabSlack int64
}

// readBoot reads the X.boot files beside the X.config fragments: one
// "key: value" a line, "cmdline:" (kernel arguments, added up), "cpus:",
// "race:" (a duration) and "slab-slack:" (a size; for each, the last one
// wins); '#' starts a comment line.
func readBoot(fragments []string) (Boot, error) {
	var b Boot
	for _, frag := range fragments {
		path := strings.TrimSuffix(frag, ".config") + ".boot"
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return b, fmt.Errorf("boot settings: %w", err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "cmdline":
				b.Cmdline = append(b.Cmdline, strings.Fields(v)...)
			case "cpus":
				if b.CPUs, err = strconv.Atoi(strings.TrimSpace(v)); err != nil || b.CPUs < 1 {
					return b, fmt.Errorf("%s:%d: cpus wants a positive number", path, i+1)
				}
			case "slab-slack":
				if b.SlabSlack, err = script.ParseSize(strings.TrimSpace(v)); err != nil {
					return b, fmt.Errorf("%s:%d: slab-slack wants a size (e.g. 32M)", path, i+1)
				}
			case "race":
				if b.Race, err = time.ParseDuration(strings.TrimSpace(v)); err != nil || b.Race <= 0 {
					return b, fmt.Errorf("%s:%d: race wants a positive duration (e.g. 5s)", path, i+1)
				}
			default:
				return b, fmt.Errorf("%s:%d: unknown key %q (want cmdline, cpus, race or slab-slack)", path, i+1, k)
			}
		}
	}
	return b, nil
}
