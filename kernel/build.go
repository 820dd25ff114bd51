package kernel

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"fusevm/internal/lazyre"
)

// keyVersion changes whenever the build recipe changes in a way that makes
// old artifacts invalid.
const keyVersion = "fusevm-kernel-build-2"

// BuildSpec is everything that determines a kernel image.
type BuildSpec struct {
	Tree *Tree
	// Series is applied on top of the tree; nil or empty for the baseline.
	Series *Series
	// Fragments are config fragment paths, merged in order onto tinyconfig.
	Fragments []string
	// Jobs is make's -j; 0 means the number of CPUs + 1.
	Jobs int
}

// Artifact is a published kernel build.
type Artifact struct {
	Key     string `json:"key"`
	Dir     string `json:"dir"`
	BzImage string `json:"bzimage"`
	// Vmlinux is the unstripped kernel, kept to decode stack traces.
	Vmlinux string `json:"vmlinux"`
	Config  string `json:"config"`
	// Cached is true when nothing had to be built.
	Cached bool `json:"cached"`
	Meta   Meta `json:"meta"`
}

// Meta records how an artifact was made; stored as meta.json beside it.
type Meta struct {
	Source    string        `json:"source"`
	Version   string        `json:"version"`
	Patches   []PatchRef    `json:"patches"`
	Fragments []string      `json:"fragments"`
	Compiler  string        `json:"compiler"`
	BuildTime time.Duration `json:"build_time_ns"`
}

// PatchRef names a patch and its digest.
type PatchRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// BuildError is a failed configure or compile step; Error() is one line
// naming the failing file, Tail holds the last lines of the build log.
type BuildError struct {
	Stage string
	File  string
	Msg   string
	Log   string
	Tail  string
}

func (e *BuildError) Error() string {
	s := "kernel " + e.Stage + " failed"
	if e.File != "" {
		s += " in " + e.File
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Log != "" {
		s += " (log: " + e.Log + ")"
	}
	return s
}

// Key computes the cache key of spec without touching the tree: the source
// identity, each patch's content, each fragment's content, and the
// compiler and binutils versions.
func Key(spec BuildSpec) (string, Meta, error) {
	h := sha256.New()
	meta := Meta{Source: spec.Tree.Identity, Version: spec.Tree.Version}
	fmt.Fprintln(h, keyVersion, runtime.GOARCH)
	// A git tree is keyed by its commit alone: the same commit reached by
	// a tag, a branch or its id, locally or from a URL, builds once.
	source := spec.Tree.Identity
	if spec.Tree.Commit != "" {
		source = "git " + spec.Tree.Commit
	}
	fmt.Fprintln(h, "source", spec.Tree.ID, source)
	if spec.Series != nil {
		for _, p := range spec.Series.Patches {
			ref := PatchRef{Name: p.Name, SHA256: p.Digest()}
			meta.Patches = append(meta.Patches, ref)
			fmt.Fprintln(h, "patch", ref.SHA256)
		}
	}
	for _, f := range spec.Fragments {
		data, err := os.ReadFile(f)
		if err != nil {
			return "", meta, fmt.Errorf("config fragment: %w", err)
		}
		meta.Fragments = append(meta.Fragments, filepath.Base(f))
		fmt.Fprintf(h, "fragment %s %x\n", filepath.Base(f), sha256.Sum256(data))
	}
	cc, err := toolVersion("gcc")
	if err != nil {
		return "", meta, err
	}
	ld, err := toolVersion("ld")
	if err != nil {
		return "", meta, err
	}
	meta.Compiler = cc + "; " + ld
	fmt.Fprintln(h, "tools", meta.Compiler)
	return hex.EncodeToString(h.Sum(nil))[:24], meta, nil
}

func toolVersion(tool string) (string, error) {
	out, err := exec.Command(tool, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s not found: install the build dependencies (apt-get install -y gcc make flex bison bc libelf-dev libssl-dev ccache)", tool)
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]), nil
}

// Build returns the artifact for spec, building it only if no artifact
// with the same key is cached. Concurrent calls for the same key build once;
// builds on the same source share one workspace, serialised by a lock, so
// switching patch sets recompiles only what the patches touch.
func Build(ctx context.Context, c *Cache, spec BuildSpec, log Logger) (*Artifact, error) {
	key, meta, err := Key(spec)
	if err != nil {
		return nil, err
	}
	art := artifactAt(c, key)
	if loadMeta(art) == nil {
		art.markCached()
		return art, nil
	}
	unlock, err := c.Lock(ctx, "build-"+key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cached, err := reuse(art, log)
	if err != nil {
		return nil, err
	}
	if cached {
		return art, nil
	}
	if err := checkBuildTools(); err != nil {
		return nil, err
	}
	unlockWS, err := c.Lock(ctx, "work-"+spec.Tree.lineage())
	if err != nil {
		return nil, err
	}
	defer unlockWS()

	start := time.Now()
	ws, err := prepareWorkspace(ctx, c, spec, log)
	if err != nil {
		return nil, err
	}
	var want [][]Option
	for _, f := range spec.Fragments {
		opts, err := ParseFragment(f)
		if err != nil {
			return nil, err
		}
		want = append(want, opts)
	}
	fragHash := sha256.New()
	for _, f := range spec.Fragments {
		data, _ := os.ReadFile(f)
		fragHash.Write(data)
	}
	outDir := filepath.Join(ws, ".out-"+hex.EncodeToString(fragHash.Sum(nil))[:12])
	env := buildEnv(c, ws)
	if err := configureOnce(ctx, spec, ws, outDir, MergeOptions(want...), env, log); err != nil {
		return nil, err
	}
	jobs := spec.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU() + 1
	}
	what := "build " + spec.Tree.Version
	if spec.Series != nil && len(spec.Series.Patches) > 0 {
		what += fmt.Sprintf(" + %d patches", len(spec.Series.Patches))
	}
	log.Stage(what)
	logPath := filepath.Join(filepath.Dir(ws), "build.log")
	if err := compile(ctx, ws, outDir, jobs, env, logPath, log); err != nil {
		return nil, err
	}
	meta.BuildTime = time.Since(start)
	log.Done(what, meta.BuildTime)
	os.MkdirAll(c.Path("kernels"), 0o755)
	if err := publishArtifact(art, outDir, logPath, meta); err != nil {
		return nil, err
	}
	return art, nil
}

func artifactAt(c *Cache, key string) *Artifact {
	dir := c.Path("kernels", key)
	return &Artifact{Key: key, Dir: dir, BzImage: filepath.Join(dir, "bzImage"), Vmlinux: filepath.Join(dir, "vmlinux"), Config: filepath.Join(dir, "config")}
}

// artifactFiles must be listed in an artifact's SHA256SUMS (build.log is
// listed when there is one).
var artifactFiles = []string{"bzImage", "vmlinux", "config", "meta.json"}

// publishArtifact publishes the build in outDir (its log at logPath) as
// art, with the digests of its files, and sets art.Meta.
func publishArtifact(art *Artifact, outDir, logPath string, meta Meta) error {
	sweepTempOf(art.Dir)
	err := Publish(art.Dir, func(tmp string) error {
		if err := CopyFile(filepath.Join(outDir, "arch/x86/boot/bzImage"), filepath.Join(tmp, "bzImage"), 0o644); err != nil {
			return err
		}
		if err := CopyFile(filepath.Join(outDir, "vmlinux"), filepath.Join(tmp, "vmlinux"), 0o644); err != nil {
			return err
		}
		if err := CopyFile(filepath.Join(outDir, ".config"), filepath.Join(tmp, "config"), 0o644); err != nil {
			return err
		}
		CopyFile(logPath, filepath.Join(tmp, "build.log"), 0o644)
		data, _ := json.MarshalIndent(meta, "", "  ")
		if err := os.WriteFile(filepath.Join(tmp, "meta.json"), data, 0o644); err != nil {
			return err
		}
		return writeDigests(tmp)
	})
	if err != nil {
		return fmt.Errorf("publish kernel %s: %w", art.Key, err)
	}
	art.Meta = meta
	return nil
}

// loadMeta checks the digests of a published artifact's files and fills
// art.Meta. An error that is fs.ErrNotExist means there is none; any other
// (a *DamageError when a file is missing or changed, or the entry
// predates digests) means the entry is there but cannot be trusted.
func loadMeta(art *Artifact) error {
	if _, err := os.Stat(art.Dir); err != nil {
		return err
	}
	if err := checkDigests(art.Dir, artifactFiles...); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(art.Dir, "meta.json"))
	if err == nil {
		err = json.Unmarshal(data, &art.Meta)
	}
	if err != nil {
		return &DamageError{File: "meta.json", Why: err.Error()}
	}
	return nil
}

// reuse reports whether art is published and intact; a damaged copy is
// removed, with a note through log, so that the caller builds it again.
// The caller holds the artifact's build lock.
func reuse(art *Artifact, log Logger) (bool, error) {
	err := loadMeta(art)
	switch {
	case err == nil:
		art.markCached()
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, dropDamaged(art.Dir, err, log, "kernel "+art.Key, "rebuilding")
}

// markCached records that art was served from the cache.
func (art *Artifact) markCached() {
	art.Cached = true
	markUsed(art.Dir)
}

func checkBuildTools() error {
	var missing []string
	for tool, pkg := range map[string]string{"make": "make", "gcc": "gcc", "flex": "flex", "bison": "bison", "bc": "bc", "ccache": "ccache", "perl": "perl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, pkg)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing build tools: apt-get install -y %s", strings.Join(missing, " "))
	}
	return nil
}

func buildEnv(c *Cache, ws string) []string {
	return []string{
		"CCACHE_DIR=" + c.Path("ccache"),
		"CCACHE_NOHASHDIR=1",
		"CCACHE_BASEDIR=" + ws,
		"CCACHE_MAXSIZE=8G",
		"KBUILD_BUILD_TIMESTAMP=1970-01-01",
		"KBUILD_BUILD_USER=fusevm",
		"KBUILD_BUILD_HOST=fusevm",
		"LOCALVERSION=",
		"LC_ALL=C",
	}
}

// configureOnce runs Configure unless outDir's .config was already made
// from the same tree, fragments and Kconfig files: tinyconfig and
// olddefconfig cost several seconds, and swapping patch sets that touch no
// Kconfig file cannot change the result.
func configureOnce(ctx context.Context, spec BuildSpec, ws, outDir string, want []Option, env []string, log Logger) error {
	h := sha256.New()
	fmt.Fprintln(h, spec.Tree.ID)
	for _, o := range want {
		fmt.Fprintln(h, o.Name, o.Value)
	}
	if spec.Series != nil {
		for _, p := range spec.Series.Patches {
			for _, f := range p.Files {
				if strings.HasPrefix(filepath.Base(f), "Kconfig") {
					data, _ := os.ReadFile(filepath.Join(ws, f))
					fmt.Fprintf(h, "%s %x\n", f, sha256.Sum256(data))
				}
			}
		}
	}
	stamp := hex.EncodeToString(h.Sum(nil))
	stampPath := filepath.Join(outDir, ".fusevm-config-stamp")
	if old, err := os.ReadFile(stampPath); err == nil && string(old) == stamp {
		if _, err := os.Stat(filepath.Join(outDir, ".config")); err == nil {
			return nil
		}
	}
	os.Remove(stampPath)
	log.Stage("configure")
	if err := Configure(ctx, ws, outDir, want, env); err != nil {
		var ce *ConfigError
		if errors.As(err, &ce) {
			return err
		}
		return &BuildError{Stage: "configure", Msg: err.Error()}
	}
	return os.WriteFile(stampPath, []byte(stamp), 0o644)
}

// workspaceState records what a workspace holds: which tree (and, for git,
// which commit) it was filled from, and which files the last applied
// series touched, so the next build can restore them.
type workspaceState struct {
	TreeID  string   `json:"tree_id"`
	Commit  string   `json:"commit,omitempty"`
	Touched []string `json:"touched"`
}

// prepareWorkspace makes work/<lineage>/linux match tree + series. The
// first time it fills it (hardlinks, a copy, or git archive); for another
// commit of the same repository it rewrites only the files that differ;
// it restores the files the previous series touched (fresh copies, so
// make sees them as changed) and applies the new series.
func prepareWorkspace(ctx context.Context, c *Cache, spec BuildSpec, log Logger) (string, error) {
	t := spec.Tree
	root := c.Path("work", t.lineage())
	ws := filepath.Join(root, "linux")
	statePath := filepath.Join(root, "state.json")
	var st workspaceState
	if data, err := os.ReadFile(statePath); err == nil {
		json.Unmarshal(data, &st)
	}
	writeState := func() error {
		data, _ := json.Marshal(st)
		return os.WriteFile(statePath, data, 0o644)
	}
	_, statErr := os.Stat(ws)
	if statErr == nil && st.TreeID != t.ID {
		var changed []string
		var err error
		if t.Repo != "" && st.Commit != "" {
			changed, err = t.changedSince(ctx, st.Commit)
		} else {
			err = errors.New("not the same repository")
		}
		if err == nil {
			log.Stage(fmt.Sprintf("workspace: update %d files to %s", len(changed), t.Identity))
			err = t.restore(ctx, ws, append(changed, st.Touched...))
		}
		if err != nil {
			os.RemoveAll(ws) // refill from scratch below
			statErr = err
		} else {
			st = workspaceState{TreeID: t.ID, Commit: t.Commit}
			if err := writeState(); err != nil {
				return "", err
			}
		}
	}
	if statErr != nil {
		log.Stage("workspace " + t.Identity)
		os.MkdirAll(root, 0o755)
		tmp := ws + ".tmp"
		os.RemoveAll(tmp)
		if err := t.populate(ctx, tmp); err != nil {
			os.RemoveAll(tmp)
			return "", annotateNoSpace(err, root)
		}
		if err := os.Rename(tmp, ws); err != nil {
			return "", err
		}
		st = workspaceState{TreeID: t.ID, Commit: t.Commit}
	}
	if err := t.restore(ctx, ws, st.Touched); err != nil {
		return "", err
	}
	st.Touched = nil
	if err := writeState(); err != nil {
		return "", err
	}
	touched, err := Apply(ctx, ws, filepath.Join(root, "series.git"), spec.Series)
	st.Touched = touched
	if werr := writeState(); werr != nil && err == nil {
		err = werr
	}
	if err != nil {
		return "", err
	}
	return ws, nil
}

var (
	errorLineRe = lazyre.New(`^([^\s:]+\.[chS]):(\d+):(?:\d+:)? (?:fatal )?error: (.*)$`)
	progressRe  = lazyre.New(`^\s+(CC|LD|AR|AS|HOSTCC|GEN|OBJCOPY|CALL|LDS|UPD|SYNC)\s+(\S+)`)
)

// compile runs make bzImage, teeing output to logPath and progress lines to
// log; on failure it names the first file with an error.
func compile(ctx context.Context, src, outDir string, jobs int, env []string, logPath string, log Logger) error {
	lf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd := exec.CommandContext(ctx, "make", "-C", src, "O="+outDir, "CC=ccache gcc", fmt.Sprintf("-j%d", jobs), "bzImage")
	cmd.Env = append(os.Environ(), env...)
	killGroupOnCancel(cmd)
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	var firstErr, firstFile string
	tail := newTail(30)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(lf, line)
			tail.add(line)
			if m := progressRe().FindStringSubmatch(line); m != nil {
				log.Progress(m[1] + " " + m[2])
			}
			if m := errorLineRe().FindStringSubmatch(line); m != nil && firstFile == "" {
				firstFile, firstErr = m[1]+":"+m[2], m[3]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err = cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		be := &BuildError{Stage: "build", File: firstFile, Msg: firstErr, Log: logPath, Tail: tail.String()}
		if be.Msg == "" {
			be.Msg = lastMeaningful(tail.lines)
		}
		return annotateNoSpace(be, outDir)
	}
	return nil
}

func lastMeaningful(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "make") {
			return l
		}
	}
	if len(lines) > 0 {
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return ""
}

// tail keeps the last n lines.
type tail struct {
	n     int
	lines []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(l string) {
	t.lines = append(t.lines, l)
	if len(t.lines) > t.n {
		t.lines = t.lines[1:]
	}
}

func (t *tail) String() string {
	var b bytes.Buffer
	for _, l := range t.lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// killGroupOnCancel runs cmd in its own process group and kills the whole
// group (make and every compiler it started) when the context is done.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
