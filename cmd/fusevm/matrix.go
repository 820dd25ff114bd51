package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"fusevm/initramfs"
	"fusevm/kernel"
	"fusevm/report"
	"fusevm/scenarios"
)

// matrixFile is configs/matrix.toml; its header documents the keys.
type matrixFile struct {
	Series    string   `toml:"series"`
	Scenarios []string `toml:"scenarios"`
	Configs   []string `toml:"configs"`
	Kernels   []string `toml:"kernels"`
	Variants  []struct {
		Name    string `toml:"name"`
		Version string `toml:"version"`
		Patches []int  `toml:"patches"`
	} `toml:"variant"`
}

// matrixSel overrides parts of a matrix file from the command line.
type matrixSel struct {
	kernelsFile string   // the kernels file the matrix's names refer to
	kernels     []string // kernel names instead of the matrix's
	configs     []string // config sets instead of the matrix's
}

// loadMatrix reads a matrix file and expands it into variants. Paths in it
// are relative to the source tree root. A prebuilt kernel gets the
// baseline variants only, once (it has no config to vary).
func loadMatrix(path, root string, sel matrixSel) ([]variant, []string, error) {
	var m matrixFile
	md, err := toml.DecodeFile(path, &m)
	if err != nil {
		return nil, nil, usagef("matrix %s: %v", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, nil, usagef("matrix %s: unknown key %s", path, und[0])
	}
	configs := sel.configs
	if len(configs) == 0 {
		configs = m.Configs
	}
	if len(configs) == 0 {
		configs = []string{"base"}
	}
	names := sel.kernels
	if len(names) == 0 {
		names = m.Kernels
	}
	if len(names) == 0 || len(m.Variants) == 0 {
		return nil, nil, usagef("matrix %s: needs kernels (or --kernel) and at least one [[variant]]", path)
	}
	all, err := loadKernels(sel.kernelsFile)
	if err != nil {
		return nil, nil, err
	}
	kernels, err := pickKernels(all, names)
	if err != nil {
		return nil, nil, err
	}
	var cat *kernel.Catalog
	if m.Series != "" {
		if cat, err = kernel.LoadCatalog(filepath.Join(root, m.Series)); err != nil {
			return nil, nil, usageError{err}
		}
	}
	var out []variant
	for _, k := range kernels {
		cfgs := configs
		if k.prebuilt() {
			cfgs = []string{""}
		}
		for _, cfg := range cfgs {
			for _, mv := range m.Variants {
				series := ""
				if mv.Version != "" {
					if k.prebuilt() {
						continue
					}
					if cat == nil {
						return nil, nil, usagef("matrix %s: variant %s names a version but no series catalog is set", path, mv.Name)
					}
					e, ok := cat.Entry(k.Base, mv.Version)
					if !ok {
						return nil, nil, usagef("matrix %s: the series has no version %s for base %q (kernel %s)", path, mv.Version, k.Base, k.Name)
					}
					series = filepath.Join(cat.Dir, e.Dir)
				}
				v, err := newVariant(k, cfg, series, mv.Patches, mv.Name, nil)
				if err != nil {
					return nil, nil, err
				}
				out = append(out, v)
			}
		}
	}
	if len(out) == 0 {
		return nil, nil, usagef("matrix %s: no variant runs on the selected kernels (a prebuilt kernel runs only variants without a version)", path)
	}
	scen := m.Scenarios
	if len(scen) == 0 {
		scen = []string{"all"}
	}
	return out, scen, nil
}

// cmdMatrix is "fusevm matrix": kernels x variants x configs x scenarios.
func cmdMatrix(ctx context.Context, args []string) (int, error) {
	fs := flag.NewFlagSet("matrix", flag.ContinueOnError)
	var c common
	c.register(fs)
	file := fs.String("file", "configs/matrix.toml", "matrix file")
	kernelsFile := fs.String("kernels", "configs/kernels.toml", "kernels file: the names --kernel and the matrix use")
	kernelNames := fs.String("kernel", "", "override the matrix's kernels: comma-separated names from the kernels file, or all")
	configs := fs.String("configs", "", "override the matrix's config sets, comma-separated (e.g. base,base+debug)")
	scen := fs.String("scenarios", "", "override the matrix's scenarios, comma-separated")
	jobs := fs.Int("j", 2, "VMs to run in parallel")
	count := fs.Int("count", 1, "run every scenario N times; repeats that disagree make the cell FLAKY")
	isolate := fs.Bool("isolate", false, "one VM per scenario (default: one VM per kernel variant)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, nil
		}
		return exitUsage, usageError{err}
	}
	if fs.NArg() > 0 || *jobs < 1 || *count < 1 {
		return exitUsage, usagef("matrix: bad arguments (-j and --count must be >= 1)")
	}
	root, err := initramfs.ModuleRoot()
	if err != nil {
		return exitFail, err
	}
	sel := matrixSel{kernelsFile: rootPath(root, *kernelsFile), kernels: splitList(*kernelNames), configs: splitList(*configs)}
	variants, scenNames, err := loadMatrix(rootPath(root, *file), root, sel)
	if err != nil {
		return exitUsage, err
	}
	if *scen != "" {
		scenNames = splitList(*scen)
	}
	ss, err := scenarios.Load(scenNames)
	if err != nil {
		return exitUsage, usageError{err}
	}
	for _, v := range variants {
		if v.kernel.prebuilt() {
			continue
		}
		if _, err := fragments(root, v.config); err != nil {
			return exitUsage, err
		}
	}
	outDir, err := c.outDir()
	if err != nil {
		return exitFail, err
	}
	p := newProgress(os.Stderr)
	run := &report.Run{Started: time.Now()}

	// Builds run one at a time (they share a workspace per source and the
	// machine's cores); VMs then run in parallel.
	type vmJob struct {
		b      *built
		ss     []scenarios.Scenario
		dir    string
		repeat int
	}
	var jobsList []vmJob
	var results []report.Result
	for _, v := range variants {
		b, skips, err := prepare(ctx, &c, v, ss, root, p)
		if err != nil {
			return exitFail, err
		}
		run.Kernels = append(run.Kernels, b.kinfo)
		if skips != nil {
			results = append(results, skips...)
			continue
		}
		groups := [][]scenarios.Scenario{ss}
		if *isolate {
			groups = nil
			for _, s := range ss {
				groups = append(groups, []scenarios.Scenario{s})
			}
		}
		for rep := 0; rep < *count; rep++ {
			for _, g := range groups {
				dir := filepath.Join(outDir, dirName(v))
				if *isolate {
					dir = filepath.Join(dir, g[0].Name)
				}
				if *count > 1 {
					dir = filepath.Join(dir, fmt.Sprintf("run%d", rep+1))
				}
				jobsList = append(jobsList, vmJob{b: b, ss: g, dir: dir, repeat: rep})
			}
		}
	}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, *jobs)
	var wg sync.WaitGroup
	var booted []report.Result
	for _, j := range jobsList {
		wg.Add(1)
		sem <- struct{}{}
		go func(j vmJob) {
			defer wg.Done()
			defer func() { <-sem }()
			rs, err := boot(ctx, &c, j.b, j.ss, j.dir, p)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			booted = append(booted, rs...)
		}(j)
	}
	wg.Wait()
	if firstErr != nil {
		return exitFail, firstErr
	}
	results = append(results, mergeRepeats(booted, variants, ss)...)
	run.Results = orderResults(results, variants, ss)
	return finish(run, outDir)
}

// mergeRepeats folds repeats of each (variant, scenario) and settles the
// merged expectation.
func mergeRepeats(rs []report.Result, variants []variant, ss []scenarios.Scenario) []report.Result {
	groups := map[string][]report.Result{}
	var keys []string
	for _, r := range rs {
		k := r.Kernel + "\x00" + r.Variant + "\x00" + r.Config + "\x00" + r.Scenario
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	var out []report.Result
	for _, k := range keys {
		m := report.Merge(groups[k])
		if len(groups[k]) > 1 {
			for _, v := range variants {
				if v.kernel.Name == m.Kernel && v.name == m.Variant && v.config == m.Config {
					for _, s := range ss {
						if s.Name == m.Scenario {
							v.settle(&m, s)
						}
					}
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// orderResults sorts results by variant (matrix order), then scenario.
func orderResults(rs []report.Result, variants []variant, ss []scenarios.Scenario) []report.Result {
	vi := map[string]int{}
	for i, v := range variants {
		vi[v.kernel.Name+"\x00"+v.name+"\x00"+v.config] = i
	}
	si := map[string]int{}
	for i, s := range ss {
		si[s.Name] = i
	}
	sort.SliceStable(rs, func(a, b int) bool {
		ka := vi[rs[a].Kernel+"\x00"+rs[a].Variant+"\x00"+rs[a].Config]
		kb := vi[rs[b].Kernel+"\x00"+rs[b].Variant+"\x00"+rs[b].Config]
		if ka != kb {
			return ka < kb
		}
		return si[rs[a].Scenario] < si[rs[b].Scenario]
	})
	return rs
}

// dirName is a file-system-safe directory name for a variant.
func dirName(v variant) string {
	s := strings.NewReplacer(":", "-", "/", "-", " ", "", "[", "-", "]", "", ",", "-", "+", "-").Replace(v.kernel.Name + "_" + v.name + "_" + v.config)
	return s
}
