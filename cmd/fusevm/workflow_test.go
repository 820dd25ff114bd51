package main

// Checks of .github/workflows/vmtest.yml, the CI workflow users copy: it
// must pass actionlint, and its matrix, cache, results and JUnit steps must
// agree with configs/kernels.toml and with where fusevm keeps its cache.
// TestWorkflowMutations breaks copies of the file in memory to show that the
// checks fail when they should.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rhysd/actionlint"

	"fusevm/kernel"
)

const (
	workflowFile = "../../.github/workflows/vmtest.yml"
	kernelsFile  = "../../configs/kernels.toml"
	// containerHome is HOME inside a job's container on GitHub's runners.
	containerHome = "/github/home"
)

// workflowCacheDirs are the directories under fusevm's cache root that the
// workflow must carry between runs.
var workflowCacheDirs = []string{"ccache", "kernels", "src", "downloads", "git", "apt/cache"}

// lintWorkflow runs actionlint on content as if it were the file at path
// and returns its errors, one formatted line each.
//
// Options: everything at its default except the checks that run external
// programs. actionlint runs shellcheck on `run:` scripts and pyflakes on
// python ones only when given their executables; pyflakes is not given (the
// workflow has no python), shellcheck is given when it is installed (Debian
// package shellcheck) and skipped otherwise, so the test needs nothing
// beyond Go. No error is ignored and no config file is read (there is no
// .github/actionlint.yaml).
func lintWorkflow(t *testing.T, path string, content []byte) []string {
	t.Helper()
	opts := &actionlint.LinterOptions{}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = sc
	}
	linter, err := actionlint.NewLinter(io.Discard, opts)
	if err != nil {
		t.Fatal(err)
	}
	errs, err := linter.Lint(path, content, nil)
	if err != nil {
		t.Fatalf("actionlint: %v", err)
	}
	var out []string
	for _, e := range errs {
		out = append(out, e.Error())
	}
	return out
}

// workflowKernelNames returns the names of the [[kernel]] tables of a
// kernels.toml, in file order.
func workflowKernelNames(t *testing.T, file string) []string {
	t.Helper()
	var f struct {
		Kernel []struct {
			Name string `toml:"name"`
		} `toml:"kernel"`
	}
	if _, err := toml.DecodeFile(file, &f); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range f.Kernel {
		names = append(names, k.Name)
	}
	if len(names) == 0 {
		t.Fatalf("%s: no [[kernel]] tables", file)
	}
	return names
}

// containerCacheDefault is the cache root fusevm picks by itself in the
// workflow's container: kernel.DefaultCacheDir with HOME=/github/home and
// neither FUSEVM_CACHE nor XDG_CACHE_HOME set.
func containerCacheDefault(t *testing.T) string {
	t.Setenv("HOME", containerHome)
	t.Setenv("FUSEVM_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	return kernel.DefaultCacheDir()
}

func readWorkflowInputs(t *testing.T) (content []byte, kernels []string, cacheRoot string) {
	t.Helper()
	content, err := os.ReadFile(workflowFile)
	if err != nil {
		t.Fatal(err)
	}
	return content, workflowKernelNames(t, kernelsFile), containerCacheDefault(t)
}

func TestWorkflowLint(t *testing.T) {
	content, err := os.ReadFile(workflowFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Log("shellcheck not installed: actionlint checks the run: scripts without it")
	}
	if errs := lintWorkflow(t, workflowFile, content); len(errs) > 0 {
		t.Errorf("actionlint found %d problem(s):\n%s", len(errs), strings.Join(errs, "\n"))
	}
}

func TestWorkflowContent(t *testing.T) {
	content, kernels, cacheRoot := readWorkflowInputs(t)
	if problems := checkWorkflow(content, kernels, cacheRoot); len(problems) > 0 {
		t.Errorf("%s:\n%s", workflowFile, strings.Join(problems, "\n"))
	}
}

// TestWorkflowMutations breaks the workflow in one way at a time and checks
// that the lint or the content checks catch it, with the expected message.
func TestWorkflowMutations(t *testing.T) {
	content, kernels, cacheRoot := readWorkflowInputs(t)
	src := string(content)
	cases := []struct {
		name     string
		old, new string // every occurrence of old (at least one) becomes new
		lint     bool   // caught by actionlint (else by checkWorkflow)
		want     string // a substring of one of the problems
	}{
		{"kernel dropped from the matrix", "          - " + kernels[len(kernels)-1] + "\n", "", false,
			"missing " + kernels[len(kernels)-1]},
		{"unknown kernel in the matrix", "          - " + kernels[0] + "\n",
			"          - " + kernels[0] + "\n          - no-such-kernel\n", false, "not in configs/kernels.toml: no-such-kernel"},
		{"YAML syntax error", "    steps:\n", "    steps: [\n", true, "YAML"},
		{"misspelt matrix key", "make vmtest KERNEL=${{ matrix.kernel }}", "make vmtest KERNEL=${{ matrix.kernal }}", true, "kernal"},
		{"unknown action input", "          go-version-file: go.mod\n", "          go-version-fil: go.mod\n", true, "go-version-fil"},
		{"vmtest without KERNEL", "make vmtest KERNEL=${{ matrix.kernel }} ", "make vmtest ", false, "KERNEL="},
		{"results elsewhere than OUT", "OUT=results/${{ matrix.kernel }}", "OUT=out/${{ matrix.kernel }}", false, "upload"},
		{"upload only on success", "      - name: Upload the results\n        if: always()\n", "      - name: Upload the results\n", false, "always()"},
		{"summary only on success", "      - name: Add the results to the job summary\n        if: always()\n", "      - name: Add the results to the job summary\n", false, "summary"},
		{"no ccache in the cache", "            ${{ env.FUSEVM_CACHE }}/ccache\n", "", false, "ccache"},
		{"cache outside fusevm's cache", "FUSEVM_CACHE: /github/home/.cache/fusevm", "FUSEVM_CACHE: /root/.cache/fusevm", false, "FUSEVM_CACHE"},
		{"JUnit report elsewhere", "report_paths: results/**/junit.xml", "report_paths: results/**/report.xml", false, "junit.xml"},
		{"no fail-fast: false", "fail-fast: false", "fail-fast: true", false, "fail-fast"},
		{"container not privileged", "options: --privileged", "options: --init", false, "--privileged"},
		{"Go from a fixed version", "go-version-file: go.mod", "go-version: '1.26'", false, "go-version-file"},
		{"mirror host named", "      - uses: actions/checkout@v6\n",
			"      - uses: actions/checkout@v6\n      - run: echo 'deb http://deb.debian.org/debian trixie main' > /etc/apt/sources.list\n", false, "host"},
		{"no KVM report", `"$msg" >> "$GITHUB_STEP_SUMMARY"`, `"$msg"`, false, "KVM"},
		{"no time limit", "    timeout-minutes: 60\n", "", false, "timeout-minutes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(src, c.old) {
				t.Fatalf("the workflow no longer contains %q: update this case", c.old)
			}
			mutated := []byte(strings.ReplaceAll(src, c.old, c.new))
			var problems []string
			if c.lint {
				problems = lintWorkflow(t, workflowFile, mutated)
			} else {
				problems = checkWorkflow(mutated, kernels, cacheRoot)
			}
			if len(problems) == 0 {
				t.Fatalf("the broken workflow passed")
			}
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, c.want) }) {
				t.Errorf("no problem mentions %q; got:\n%s", c.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// checkWorkflow returns what is wrong with the workflow: its matrix must
// list exactly kernels, and its cache paths must lie under cacheRoot, the
// directory fusevm uses in the container.
func checkWorkflow(content []byte, kernels []string, cacheRoot string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if m := wfHostRe.FindString(string(content)); m != "" {
		bad("the file names a host (%q): fusevm takes the Debian mirror from the container's apt sources", m)
	}
	w, errs := actionlint.Parse(content)
	for _, e := range errs {
		bad("parse: %s", e.Error())
	}
	if w == nil {
		return problems
	}

	events := map[string]bool{}
	for _, e := range w.On {
		events[e.EventName()] = true
	}
	for _, e := range []string{"push", "pull_request", "workflow_dispatch"} {
		if !events[e] {
			bad("not triggered on %s", e)
		}
	}
	if w.Permissions == nil || wfScope(w.Permissions, "checks") != "write" || wfScope(w.Permissions, "contents") != "read" {
		bad("permissions must be checks: write, contents: read (for the JUnit check runs)")
	}

	if len(w.Jobs) != 1 {
		bad("want one job, got %d", len(w.Jobs))
		return problems
	}
	var job *actionlint.Job
	for _, j := range w.Jobs {
		job = j
	}

	// The container: Debian (the debian: provider needs apt sources),
	// privileged (passes /dev/kvm when there is one).
	if c := job.Container; c == nil || c.Image == nil || c.Image.Value != "debian:trixie" {
		bad("the job must run in container image debian:trixie")
	} else if c.Options == nil || !slices.Contains(strings.Fields(c.Options.Value), "--privileged") {
		bad("the container needs options: --privileged to see /dev/kvm")
	}
	if job.TimeoutMinutes == nil || job.TimeoutMinutes.Expression != nil || job.TimeoutMinutes.Value <= 0 || job.TimeoutMinutes.Value > 120 {
		bad("the job needs timeout-minutes (1-120)")
	}

	// The matrix: exactly the kernels of kernels.toml, nothing added or
	// removed by include, exclude or an expression.
	var listed []string
	if s := job.Strategy; s == nil || s.Matrix == nil {
		bad("the job has no matrix")
	} else {
		if s.FailFast == nil || s.FailFast.Expression != nil || s.FailFast.Value {
			bad("strategy needs fail-fast: false so one kernel's failure does not cancel the others")
		}
		m := s.Matrix
		if m.Expression != nil || m.Include != nil || m.Exclude != nil {
			bad("the matrix must be a literal kernel list, without include, exclude or expressions")
		}
		for name := range m.Rows {
			if name != "kernel" {
				bad("unexpected matrix axis %q", name)
			}
		}
		if row := m.Rows["kernel"]; row == nil || row.Expression != nil {
			bad("the matrix needs a literal kernel: list")
		} else {
			for _, v := range row.Values {
				if str, ok := v.(*actionlint.RawYAMLString); ok {
					listed = append(listed, str.Value)
				} else {
					bad("matrix kernel %s is not a string", v.String())
				}
			}
		}
	}
	if len(listed) > 0 {
		for _, k := range kernels {
			if !slices.Contains(listed, k) {
				bad("matrix kernel list is missing %s (configs/kernels.toml has it)", k)
			}
		}
		for i, k := range listed {
			if !slices.Contains(kernels, k) {
				bad("matrix kernel is not in configs/kernels.toml: %s", k)
			} else if slices.Index(listed, k) != i {
				bad("matrix kernel listed twice: %s", k)
			}
		}
	}

	env := map[string]string{}
	for _, e := range []*actionlint.Env{w.Env, job.Env} {
		if e != nil {
			for _, v := range e.Vars {
				env[v.Name.Value] = v.Value.Value
			}
		}
	}
	if v, ok := env["FUSEVM_CACHE"]; ok && v != cacheRoot {
		bad("FUSEVM_CACHE is %s, but fusevm's own default in the container is %s", v, cacheRoot)
	}
	if v, ok := env["FUSEVM_CACHE"]; ok {
		cacheRoot = v
	}

	// The steps, in the order they must come.
	var (
		checkout, setupGo, deps, kvm, restore, save, vmtest, summary, upload, junit = -1, -1, -1, -1, -1, -1, -1, -1, -1, -1
		outDir                                                                      string
	)
	for i, st := range job.Steps {
		switch ex := st.Exec.(type) {
		case *actionlint.ExecRun:
			run := ex.Run.Value
			if strings.Contains(run, "/dev/kvm") {
				kvm = i
				if !strings.Contains(run, "GITHUB_STEP_SUMMARY") {
					bad("the KVM step must write to the job summary ($GITHUB_STEP_SUMMARY)")
				}
				if !regexp.MustCompile(`\[ -e /dev/kvm \]`).MatchString(run) {
					bad("the KVM step must touch /dev/kvm only when it exists ([ -e /dev/kvm ])")
				}
			}
			if regexp.MustCompile(`(?m)^\s*make deps\s*$`).MatchString(run) {
				deps = i
			}
			if m := regexp.MustCompile(`(?m)^\s*make vmtest\b(.*)$`).FindStringSubmatch(run); m != nil {
				vmtest = i
				args := wfFields(m[1])
				if !slices.Contains(args, "KERNEL=${{ matrix.kernel }}") {
					bad("make vmtest needs KERNEL=${{ matrix.kernel }}, got %q", m[0])
				}
				for _, a := range args {
					if v, ok := strings.CutPrefix(a, "OUT="); ok {
						outDir = v
					}
				}
				if !strings.Contains(outDir, "${{ matrix.kernel }}") {
					bad("make vmtest needs OUT=<dir per kernel>, got %q", m[0])
				}
			}
			if strings.Contains(run, "summary.md") && strings.Contains(run, "GITHUB_STEP_SUMMARY") {
				summary = i
				if outDir == "" || !strings.Contains(run, outDir+"/summary.md") {
					bad("the summary step must read %s/summary.md (OUT of make vmtest)", outDir)
				}
				if !wfRunsAlways(st) {
					bad("the summary step must run if: always()")
				}
			}
		case *actionlint.ExecAction:
			uses := ex.Uses.Value
			action, _, _ := strings.Cut(uses, "@")
			switch action {
			case "actions/checkout":
				checkout = i
			case "actions/setup-go":
				setupGo = i
				if wfInput(ex, "go-version-file") != "go.mod" || wfInput(ex, "go-version") != "" {
					bad("setup-go must take the version from go-version-file: go.mod")
				}
			case "actions/cache", "actions/cache/restore", "actions/cache/save":
				if action == "actions/cache/save" {
					save = i
				} else {
					restore = i
				}
				var dirs []string
				for _, p := range strings.Split(wfInput(ex, "path"), "\n") {
					if p = strings.TrimSpace(p); p != "" {
						dirs = append(dirs, expandWorkflowPath(p, env))
					}
				}
				for _, d := range workflowCacheDirs {
					if !slices.Contains(dirs, path.Join(cacheRoot, d)) {
						bad("%s does not cache %s (got %q)", uses, path.Join(cacheRoot, d), dirs)
					}
				}
				key := wfInput(ex, "key")
				if action != "actions/cache/save" && (!strings.Contains(key, "${{ matrix.kernel }}") || !strings.Contains(key, "hashFiles(")) {
					bad("%s key must depend on the kernel and hashFiles of the inputs, got %q", uses, key)
				}
			case "actions/upload-artifact":
				upload = i
				if !wfRunsAlways(st) {
					bad("the upload step must run if: always()")
				}
				if p := strings.TrimSpace(wfInput(ex, "path")); outDir == "" || p != outDir {
					bad("the upload step uploads %q, not make vmtest's OUT %q", p, outDir)
				}
				if !strings.Contains(wfInput(ex, "name"), "${{ matrix.kernel }}") {
					bad("the artifact name must contain ${{ matrix.kernel }} (one per job)")
				}
			case "mikepenz/action-junit-report":
				junit = i
				if !wfRunsAlways(st) {
					bad("the JUnit step must run if: always()")
				}
				if rp := wfInput(ex, "report_paths"); !strings.HasSuffix(rp, "/junit.xml") || !strings.HasPrefix(rp, "results/") {
					bad("the JUnit step must read results/**/junit.xml, got %q", rp)
				}
			}
		}
	}
	order := []struct {
		what string
		i    int
	}{
		{"actions/checkout", checkout}, {"actions/setup-go", setupGo}, {"make deps", deps},
		{"the KVM check", kvm}, {"the cache restore", restore}, {"make vmtest", vmtest},
		{"the summary step", summary}, {"the results upload", upload}, {"the JUnit report", junit},
	}
	for k, o := range order {
		if o.i < 0 {
			bad("no step for %s", o.what)
		} else if k > 0 && o.i < order[k-1].i {
			bad("%s must come after %s", o.what, order[k-1].what)
		}
	}
	if save >= 0 && save < vmtest {
		bad("the cache is saved before make vmtest filled it")
	}
	return problems
}

// wfHostRe matches a URL or a host name: the workflow must not name a package
// mirror (or anything else fetched over the network).
var wfHostRe = regexp.MustCompile(`(?i)[a-z][a-z0-9+.-]*://|\b[a-z0-9-]+(\.[a-z0-9-]+)*\.(org|com|net|io|de|uk)\b`)

var wfEnvExprRe = regexp.MustCompile(`\$\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// expandWorkflowPath resolves ${{ env.X }} and a leading ~ as they are in
// the container.
func expandWorkflowPath(p string, env map[string]string) string {
	p = wfEnvExprRe.ReplaceAllStringFunc(p, func(m string) string {
		return env[wfEnvExprRe.FindStringSubmatch(m)[1]]
	})
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		p = path.Join(containerHome, rest)
	}
	return path.Clean(p)
}

// wfFields splits a command line at blanks outside ${{ }} expressions.
func wfFields(s string) []string {
	var fields []string
	var cur strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "${{"):
			depth++
		case strings.HasPrefix(s[i:], "}}") && depth > 0:
			depth--
			cur.WriteString("}}")
			i++
			continue
		case (s[i] == ' ' || s[i] == '\t') && depth == 0:
			if cur.Len() > 0 {
				fields = append(fields, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteByte(s[i])
	}
	if cur.Len() > 0 {
		fields = append(fields, cur.String())
	}
	return fields
}

func wfRunsAlways(st *actionlint.Step) bool {
	if st.If == nil {
		return false
	}
	c := strings.TrimSpace(st.If.Value)
	c = strings.TrimSuffix(strings.TrimPrefix(c, "${{"), "}}")
	return strings.HasPrefix(strings.TrimSpace(c), "always()")
}

func wfInput(ex *actionlint.ExecAction, name string) string {
	if in := ex.Inputs[strings.ToLower(name)]; in != nil && in.Value != nil {
		return in.Value.Value
	}
	return ""
}

func wfScope(p *actionlint.Permissions, name string) string {
	if s := p.Scopes[name]; s != nil && s.Value != nil {
		return s.Value.Value
	}
	return ""
}
