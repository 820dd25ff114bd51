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
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"fusevm/internal/atomicfile"
	"fusevm/internal/lazyre"
)

// Tree is a resolved, extracted kernel source tree. Its Dir is never written
// to: builds copy it into a workspace first.
type Tree struct {
	// Spec is the source specification the user gave.
	Spec string `json:"spec"`
	// Dir is the root of the kernel tree (holds Makefile, Kconfig, arch/).
	Dir string `json:"dir"`
	// ID is a short content identity, used in cache paths and build keys.
	ID string `json:"id"`
	// Identity is the exact provenance, recorded in results (package and
	// version, commit, tarball digest).
	Identity string `json:"identity"`
	// Version is the kernel version from the top Makefile, e.g. "7.3.4".
	Version string `json:"version"`
	// Repo and Commit are set for git sources, whose trees are read from
	// the repository on demand instead of being extracted (Dir is empty).
	Repo   string `json:"repo,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// lineage names the workspace a tree builds in: every commit of one git
// repository shares a workspace (a bisect step then recompiles only what
// changed between commits); other trees have their own.
func (t *Tree) lineage() string {
	if t.Repo != "" {
		sum := sha256.Sum256([]byte(t.Repo))
		return "repo-" + hex.EncodeToString(sum[:8])
	}
	return t.ID
}

// populate writes the whole tree into dst, which must not exist.
func (t *Tree) populate(ctx context.Context, dst string) error {
	if t.Repo != "" {
		if err := os.MkdirAll(dst, 0o755); err != nil {
			return err
		}
		return t.gitExtract(ctx, dst, nil)
	}
	if out, err := exec.CommandContext(ctx, "cp", "-al", t.Dir, dst).CombinedOutput(); err != nil {
		os.RemoveAll(dst)
		if out, err = exec.CommandContext(ctx, "cp", "-a", t.Dir, dst).CombinedOutput(); err != nil {
			os.RemoveAll(dst)
			return fmt.Errorf("copy source to workspace: %s", lastLine(out))
		}
	}
	return nil
}

// restore makes files in dst match the tree again, as fresh copies (new
// mtimes, so make rebuilds what depends on them); files the tree lacks are
// removed.
func (t *Tree) restore(ctx context.Context, dst string, files []string) error {
	if len(files) == 0 {
		return nil
	}
	if t.Repo != "" {
		var present []string
		out, err := exec.CommandContext(ctx, "git", append([]string{"-C", t.Repo, "ls-tree", "-r", "--name-only", t.Commit, "--"}, files...)...).Output()
		if err != nil {
			return fmt.Errorf("git ls-tree: %w", err)
		}
		have := map[string]bool{}
		for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if f != "" {
				have[f] = true
				present = append(present, f)
			}
		}
		for _, f := range files {
			if !have[f] {
				os.Remove(filepath.Join(dst, f))
			}
		}
		if len(present) == 0 {
			return nil
		}
		for _, f := range present {
			os.Remove(filepath.Join(dst, f)) // never write through a hardlink
		}
		return t.gitExtract(ctx, dst, present)
	}
	for _, f := range files {
		d := filepath.Join(dst, f)
		info, err := os.Stat(filepath.Join(t.Dir, f))
		if err != nil {
			os.Remove(d)
			continue
		}
		tmp := d + ".fusevm-restore"
		if err := CopyFile(filepath.Join(t.Dir, f), tmp, info.Mode().Perm()); err != nil {
			return err
		}
		if err := os.Rename(tmp, d); err != nil {
			return err
		}
	}
	return nil
}

// changedSince lists the paths that differ between an earlier commit of
// the same repository and this one.
func (t *Tree) changedSince(ctx context.Context, commit string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", t.Repo, "diff", "--name-only", "--no-renames", commit, t.Commit).Output()
	if err != nil {
		return nil, fmt.Errorf("git diff %s %s: %w", commit, t.Commit, err)
	}
	var files []string
	for _, f := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files, nil
}

// gitExtract writes paths (all when nil) of the commit into dst with fresh
// mtimes.
func (t *Tree) gitExtract(ctx context.Context, dst string, paths []string) error {
	args := []string{"-C", t.Repo, "archive", "--format=tar", t.Commit}
	if paths != nil {
		args = append(append(args, "--"), paths...)
	}
	archive := exec.CommandContext(ctx, "git", args...)
	untar := exec.CommandContext(ctx, "tar", "-x", "-m", "-C", dst)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return err
	}
	untar.Stdin = pipe
	var aerr, terr bytes.Buffer
	archive.Stderr, untar.Stderr = &aerr, &terr
	if err := untar.Start(); err != nil {
		return err
	}
	if err := archive.Run(); err != nil {
		untar.Wait()
		return fmt.Errorf("git archive %s: %s", t.Commit[:12], lastLine(aerr.Bytes()))
	}
	if err := untar.Wait(); err != nil {
		return annotateNoSpace(fmt.Errorf("extract %s: %s", t.Commit[:12], lastLine(terr.Bytes())), dst)
	}
	return nil
}

// ErrBadSpec reports a source specification fusevm does not understand.
var ErrBadSpec = errors.New("bad kernel source")

// Resolve turns a source specification into an extracted Tree, fetching and
// extracting into the cache when needed. Specifications:
//
//	debian:X.Y[=VERSION]        Debian's linux-source-X.Y package
//	dir:PATH                    a local kernel tree, used as is
//	git:REPO[@REV]              a revision of a local git repository (default HEAD)
//	git:URL[@REV]               the same fetched from a URL (https://, ssh://,
//	                            file://, user@host:path) into a mirror in the
//	                            cache, shallowly: only that commit, no history
//	tarball:PATH                a local .tar.{xz,gz,bz2,zst} of a kernel tree
//	tarball:URL#sha256=HEX      a downloaded tarball; the digest is required
func Resolve(ctx context.Context, c *Cache, spec string, log Logger) (*Tree, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok || arg == "" {
		return nil, fmt.Errorf("%w %q: want debian:X.Y, dir:PATH, git:REPO|URL[@REV] or tarball:PATH|URL#sha256=HEX", ErrBadSpec, spec)
	}
	var t *Tree
	var err error
	switch kind {
	case "debian":
		t, err = resolveDebian(ctx, c, arg, log)
	case "dir":
		t, err = resolveDir(arg)
	case "git":
		t, err = resolveGit(ctx, c, arg, log)
	case "tarball":
		t, err = resolveTarball(ctx, c, arg, log)
	default:
		return nil, fmt.Errorf("%w %q: unknown provider %q (want debian, dir, git or tarball)", ErrBadSpec, spec, kind)
	}
	if err != nil {
		return nil, err
	}
	t.Spec = spec
	if t.Version == "" {
		if t.Version, err = makefileVersion(t.Dir); err != nil {
			return nil, fmt.Errorf("source %s: %w", spec, err)
		}
	}
	return t, nil
}

// makefileVersion reads VERSION.PATCHLEVEL.SUBLEVEL from the top Makefile,
// and doubles as the check that dir is a kernel tree.
func makefileVersion(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return "", fmt.Errorf("%s is not a kernel tree (no top Makefile)", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "arch", "x86", "Kconfig")); err != nil {
		return "", fmt.Errorf("%s is not a kernel tree with arch/x86", dir)
	}
	v, err := parseMakefileVersion(data)
	if err != nil {
		return "", fmt.Errorf("%s is not a kernel tree (%v)", dir, err)
	}
	return v, nil
}

// parseMakefileVersion reads VERSION.PATCHLEVEL.SUBLEVEL from a top Makefile.
func parseMakefileVersion(data []byte) (string, error) {
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 0; sc.Scan() && n < 20; n++ {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			vals[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if vals["VERSION"] == "" || vals["PATCHLEVEL"] == "" {
		return "", errors.New("top Makefile has no VERSION/PATCHLEVEL")
	}
	v := vals["VERSION"] + "." + vals["PATCHLEVEL"]
	if s := vals["SUBLEVEL"]; s != "" {
		v += "." + s
	}
	return v, nil
}

// resolveDir uses a local tree in place. Its identity hashes every file's
// path, size and mtime (fast; a content change that keeps size and mtime
// is not noticed).
func resolveDir(path string) (*Tree, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", path, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("source dir:%s: not a directory", path)
	}
	if _, err := makefileVersion(abs); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, ".config")); err == nil {
		return nil, fmt.Errorf("source dir:%s has a .config (built in-tree): run 'make mrproper' there or use git:%s", path, path)
	}
	h := sha256.New()
	fmt.Fprintln(h, abs)
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%s %d %d\n", p[len(abs):], info.Size(), info.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("source dir:%s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return &Tree{Dir: abs, ID: "dir-" + sum[:16], Identity: "dir " + abs + " (files " + sum[:16] + ")"}, nil
}

// resolveGit resolves REV of a repository: a local path, read in place,
// or a URL, fetched into a mirror in the cache (see fetchRemote). Nothing
// is extracted: the build workspace is filled from the repository (git
// archive) and, for the next commit, updated with only the files that
// changed. A local repository is only read: no worktree, no index, no
// checkout.
func resolveGit(ctx context.Context, c *Cache, arg string, log Logger) (*Tree, error) {
	repo, rev := splitGitSpec(arg)
	if rev == "" {
		rev = "HEAD"
	}
	if isGitURL(repo) {
		mirror, commit, err := fetchRemote(ctx, c, repo, rev, log)
		if err != nil {
			return nil, fmt.Errorf("source git:%s: %w", arg, err)
		}
		return gitTree(ctx, arg, mirror, commit, fmt.Sprintf("git %s %s (commit %s)", repo, rev, commit))
	}
	commit, err := gitOut(ctx, repo, "rev-parse", "--verify", "--quiet", rev+"^{commit}")
	if err != nil {
		if _, statErr := os.Stat(repo); statErr != nil {
			return nil, fmt.Errorf("source git:%s: repository %s: %w", arg, repo, statErr)
		}
		if _, e := gitOut(ctx, repo, "rev-parse", "--git-dir"); e != nil {
			return nil, fmt.Errorf("source git:%s: %s is not a git repository", arg, repo)
		}
		return nil, fmt.Errorf("source git:%s: revision %q does not exist in %s", arg, rev, repo)
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return nil, err
	}
	return gitTree(ctx, arg, abs, commit, "git "+commit)
}

// gitTree checks that commit of repo holds a kernel tree and describes it.
func gitTree(ctx context.Context, arg, repo, commit, identity string) (*Tree, error) {
	tree, err := gitOut(ctx, repo, "rev-parse", commit+"^{tree}")
	if err != nil {
		return nil, fmt.Errorf("source git:%s: %w", arg, err)
	}
	mk, err := exec.CommandContext(ctx, "git", "-C", repo, "show", commit+":Makefile").Output()
	if err != nil {
		return nil, fmt.Errorf("source git:%s: commit %s is not a kernel tree (no top Makefile)", arg, commit[:12])
	}
	if exec.CommandContext(ctx, "git", "-C", repo, "cat-file", "-e", commit+":arch/x86/Kconfig").Run() != nil {
		return nil, fmt.Errorf("source git:%s: commit %s is not a kernel tree with arch/x86", arg, commit[:12])
	}
	t := &Tree{ID: "git-" + tree[:16], Identity: identity, Repo: repo, Commit: commit}
	if t.Version, err = parseMakefileVersion(mk); err != nil {
		return nil, fmt.Errorf("source git:%s: commit %s: %w", arg, commit[:12], err)
	}
	return t, nil
}

// gitOut runs git in repo and returns its trimmed output.
func gitOut(ctx context.Context, repo string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...).Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

var sha256Re = lazyre.New(`^[0-9a-f]{64}$`)

// resolveTarball extracts a local or downloaded tarball.
func resolveTarball(ctx context.Context, c *Cache, arg string, log Logger) (*Tree, error) {
	loc, frag, _ := strings.Cut(arg, "#")
	want := strings.TrimPrefix(frag, "sha256=")
	if frag != "" && (!strings.HasPrefix(frag, "sha256=") || !sha256Re().MatchString(want)) {
		return nil, fmt.Errorf("source tarball:%s: digest must be #sha256=<64 lowercase hex digits>", arg)
	}
	path, sum := loc, want
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		if want == "" {
			return nil, fmt.Errorf("source tarball:%s: a URL needs its digest: tarball:%s#sha256=HEX", arg, loc)
		}
		var err error
		if path, err = download(ctx, c, loc, want, log); err != nil {
			return nil, fmt.Errorf("source tarball:%s: %w", loc, err)
		}
	} else {
		st, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("source tarball:%s: %w", loc, err)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("source tarball:%s: is a directory (use dir:%s)", loc, loc)
		}
		if sum, err = HashFile(path); err != nil {
			return nil, fmt.Errorf("source tarball:%s: %w", loc, err)
		}
		if want != "" && sum != want {
			return nil, fmt.Errorf("source tarball:%s: sha256 mismatch: got %s, want %s", loc, sum, want)
		}
	}
	id := "tar-" + sum[:16]
	name := filepath.Base(loc)
	if err := ensureExtracted(ctx, c, id, log, "extract "+name, func(tmp string) error {
		return untarAs(ctx, path, name, tmp)
	}); err != nil {
		return nil, fmt.Errorf("source tarball:%s: %w", loc, err)
	}
	return &Tree{Dir: c.Path("src", id, "linux"), ID: id, Identity: "tarball " + name + " sha256:" + sum}, nil
}

// untar extracts a kernel tarball into dst, dropping its top directory.
func untar(ctx context.Context, tarball, dst string) error {
	return untarAs(ctx, tarball, filepath.Base(tarball), dst)
}

// untarAs is untar calling the tarball name in errors (a download's file
// is named by its digest).
func untarAs(ctx context.Context, tarball, name, dst string) error {
	cmd := exec.CommandContext(ctx, "tar", "-x", "--strip-components=1", "-f", tarball, "-C", dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("extract %s: %w", name, ctx.Err())
		}
		return fmt.Errorf("%s is corrupt or not a kernel tarball (%s)", name, firstLine(stderr.Bytes()))
	}
	if _, err := makefileVersion(dst); err != nil {
		return fmt.Errorf("%s does not hold a kernel tree (no top Makefile with VERSION, or no arch/x86/Kconfig)", name)
	}
	return nil
}

// download fetches url into downloads/<sha256> once, under a lock. A
// download that fails (HTTP error, interrupted, stalled, cancelled, wrong
// digest) leaves nothing behind.
func download(ctx context.Context, c *Cache, url, want string, log Logger) (string, error) {
	final := c.Path("downloads", want)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	if err := os.MkdirAll(c.Path("downloads"), 0o755); err != nil {
		return "", err
	}
	unlock, err := c.Lock(ctx, "download-"+want[:16])
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(final); err == nil {
		return final, nil // downloaded while we waited for the lock
	}
	what := "download " + url
	log.Stage(what)
	start := time.Now()
	tmp := c.Path("downloads", ".tmp-"+want) // ours under the lock; a killed run's is overwritten
	defer os.Remove(tmp)
	if err := fetchURL(ctx, url, tmp, want); err != nil {
		return "", annotateNoSpace(err, c.Path("downloads"))
	}
	if err := os.Rename(tmp, final); err != nil {
		return "", err
	}
	log.Done(what, time.Since(start))
	return final, nil
}

// ensureExtracted publishes src/<id>/linux once, under a lock, by calling
// extract on a temporary directory.
func ensureExtracted(ctx context.Context, c *Cache, id string, log Logger, what string, extract func(dst string) error) error {
	final := c.Path("src", id)
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	unlock, err := c.Lock(ctx, "src-"+id)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(final); err == nil {
		return nil
	}
	sweepTempOf(final)
	log.Stage(what)
	start := time.Now()
	err = Publish(final, func(tmp string) error {
		dst := filepath.Join(tmp, "linux")
		if err := os.Mkdir(dst, 0o755); err != nil {
			return err
		}
		return extract(dst)
	})
	if err == nil {
		log.Done(what, time.Since(start))
	}
	return err
}

// Debian suites searched for linux-source-X.Y packages.
var debianSuites = []string{"trixie", "trixie-backports", "forky", "sid"}

var debianVersionRe = lazyre.New(`^[0-9]+\.[0-9]+$`)

// resolveDebian fetches linux-source-X.Y with apt under a private sources
// list and state directory (the system's apt configuration is only read, to
// learn its mirror) and extracts the tarball it ships.
func resolveDebian(ctx context.Context, c *Cache, arg string, log Logger) (*Tree, error) {
	series, pin, _ := strings.Cut(arg, "=")
	if !debianVersionRe().MatchString(series) {
		return nil, fmt.Errorf("%w debian:%s: want debian:X.Y (e.g. debian:7.3) or debian:X.Y=PACKAGE-VERSION", ErrBadSpec, arg)
	}
	pkg := "linux-source-" + series
	var deb, version string
	err := withApt(ctx, c, func(a *privateApt) (err error) {
		deb, version, err = a.fetch(ctx, pkg, pin, log)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("source debian:%s: %w", arg, err)
	}
	sum, err := hashRemembered(deb)
	if err != nil {
		return nil, err
	}
	id := "deb-" + sum[:16]
	if err := ensureExtracted(ctx, c, id, log, "extract "+pkg+" "+version, func(dst string) error {
		return extractDebianSource(ctx, deb, pkg, dst)
	}); err != nil {
		return nil, fmt.Errorf("source debian:%s: %w", arg, err)
	}
	return &Tree{Dir: c.Path("src", id, "linux"), ID: id, Identity: fmt.Sprintf("debian %s %s (sha256:%s)", pkg, version, sum)}, nil
}

func extractDebianSource(ctx context.Context, deb, pkg, dst string) error {
	unpack := filepath.Join(filepath.Dir(dst), "deb")
	if err := os.Mkdir(unpack, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(unpack)
	cmd := exec.CommandContext(ctx, "sh", "-c", `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2"`, "sh", deb, unpack)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %s", filepath.Base(deb), lastLine(out))
	}
	matches, _ := filepath.Glob(filepath.Join(unpack, "usr/src", pkg+".tar.*"))
	if len(matches) != 1 {
		return fmt.Errorf("%s does not ship usr/src/%s.tar.*", filepath.Base(deb), pkg)
	}
	return untar(ctx, matches[0], dst)
}

// privateApt runs apt-get with its own sources list, lists and archive
// cache under the fusevm cache, built from the system's mirror URI.
type privateApt struct {
	dir    string
	mirror string
}

// withApt runs fn with the cache's private apt, under its lock.
func withApt(ctx context.Context, c *Cache, fn func(*privateApt) error) error {
	a, err := newPrivateApt(c)
	if err != nil {
		return err
	}
	unlock, err := c.Lock(ctx, "apt")
	if err != nil {
		return err
	}
	defer unlock()
	return fn(a)
}

func newPrivateApt(c *Cache) (*privateApt, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return nil, errors.New("apt-get not found: the debian provider needs a Debian-based host (use tarball: or git: instead)")
	}
	mirror := os.Getenv("FUSEVM_DEBIAN_MIRROR")
	if mirror == "" {
		var err error
		if mirror, err = systemMirror(); err != nil {
			return nil, err
		}
	}
	a := &privateApt{dir: c.Path("apt"), mirror: mirror}
	for _, d := range []string{"etc", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(a.dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var list strings.Builder
	for _, s := range debianSuites {
		fmt.Fprintf(&list, "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n", mirror, s)
	}
	if err := os.WriteFile(filepath.Join(a.dir, "etc/sources.list"), []byte(list.String()), 0o644); err != nil {
		return nil, err
	}
	return a, nil
}

// systemMirror reads the first Debian archive URI from the system's apt
// sources (deb822 .sources files or sources.list), skipping security.
func systemMirror() (string, error) {
	var files []string
	files, _ = filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, "/etc/apt/sources.list")
	files2, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(files, files2...)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			var uri string
			switch {
			case len(fields) >= 2 && fields[0] == "URIs:":
				uri = fields[1]
			case len(fields) >= 3 && fields[0] == "deb":
				for _, f := range fields[1:] {
					if strings.Contains(f, "://") {
						uri = f
						break
					}
				}
			}
			if uri != "" && strings.HasSuffix(strings.TrimRight(uri, "/"), "/debian") {
				return strings.TrimRight(uri, "/"), nil
			}
		}
	}
	return "", errors.New("no Debian mirror found in /etc/apt sources; set FUSEVM_DEBIAN_MIRROR")
}

func (a *privateApt) opts() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.dir, "etc/sources.list"),
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
		"-o", "Dir::State::status=/dev/null",
		"-o", "APT::Architecture=amd64",
		"-o", "APT::Sandbox::User=root",
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::CNF::DefaultEnabled=false",
	}
}

func (a *privateApt) run(ctx context.Context, dir string, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(a.opts(), args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", tool, args[0], err, lastLine(stderr.Bytes()))
	}
	return out, nil
}

// fetch returns the path of the .deb for pkg (at version pin, or the
// newest available) and its exact version. It refreshes the package lists
// when they are missing or older than a day, or when pin is not found.
func (a *privateApt) fetch(ctx context.Context, pkg, pin string, log Logger) (string, string, error) {
	archives := filepath.Join(a.dir, "cache/archives")
	if pin != "" {
		if p := a.cachedDeb(pkg, pin); p != "" {
			return p, pin, nil
		}
	}
	fresh := false
	if a.listsAge() > 24*time.Hour || os.Getenv("FUSEVM_APT_REFRESH") != "" {
		if err := a.update(ctx, log); err != nil {
			return "", "", err
		}
		fresh = true
	}
	versions, err := a.versions(ctx, pkg)
	if (err != nil || len(versions) == 0 || (pin != "" && !contains(versions, pin))) && !fresh {
		if err := a.update(ctx, log); err != nil {
			return "", "", err
		}
		versions, err = a.versions(ctx, pkg)
	}
	if err != nil {
		return "", "", err
	}
	if len(versions) == 0 {
		return "", "", fmt.Errorf("no package %s in %s (suites %s)", pkg, a.mirror, strings.Join(debianSuites, ", "))
	}
	version := versions[0]
	if pin != "" {
		if !contains(versions, pin) {
			return "", "", fmt.Errorf("%s has no version %s (available: %s)", pkg, pin, strings.Join(versions, ", "))
		}
		version = pin
	}
	if p := a.cachedDeb(pkg, version); p != "" {
		return p, version, nil
	}
	log.Stage("download " + pkg + " " + version)
	start := time.Now()
	tmp, err := os.MkdirTemp(archives, ".tmp-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	if _, err := a.run(ctx, tmp, "apt-get", "-q", "download", pkg+"="+version); err != nil {
		return "", "", annotateNoSpace(err, archives)
	}
	got, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(got) != 1 {
		return "", "", fmt.Errorf("apt-get download %s=%s produced no .deb", pkg, version)
	}
	final := filepath.Join(archives, filepath.Base(got[0]))
	if err := os.Rename(got[0], final); err != nil {
		return "", "", err
	}
	log.Done("download "+pkg, time.Since(start))
	return final, version, nil
}

// cachedDeb finds an already downloaded .deb of any architecture (apt
// escapes ':' as %3a).
func (a *privateApt) cachedDeb(pkg, version string) string {
	name := pkg + "_" + strings.ReplaceAll(version, ":", "%3a") + "_"
	for _, arch := range []string{"all", "amd64"} {
		p := filepath.Join(a.dir, "cache/archives", name+arch+".deb")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func (a *privateApt) listsAge() time.Duration {
	entries, err := os.ReadDir(filepath.Join(a.dir, "lists"))
	var newest time.Time
	if err == nil {
		for _, e := range entries {
			if info, err := e.Info(); err == nil && strings.Contains(e.Name(), "_Packages") && info.ModTime().After(newest) {
				newest = info.ModTime()
			}
		}
	}
	if newest.IsZero() {
		return time.Duration(1<<62 - 1)
	}
	return time.Since(newest)
}

func (a *privateApt) update(ctx context.Context, log Logger) error {
	what := "apt update (private lists, " + a.mirror + ")"
	log.Stage(what)
	start := time.Now()
	if _, err := a.run(ctx, a.dir, "apt-get", "-q", "update"); err != nil {
		return err
	}
	log.Done(what, time.Since(start))
	return nil
}

// versions lists pkg's available versions, newest first. The answer is
// remembered in versionsFile for as long as the package lists stay the
// same: `apt-cache madison` reads every list, about 3 s on this project's
// machine, and every variant of a run resolves its source.
func (a *privateApt) versions(ctx context.Context, pkg string) ([]string, error) {
	memo := a.readVersions()
	if vs, ok := memo.Versions[pkg]; ok {
		return vs, nil
	}
	out, err := a.run(ctx, a.dir, "apt-cache", "madison", pkg)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	vs := []string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 3 || strings.TrimSpace(f[0]) != pkg {
			continue
		}
		v := strings.TrimSpace(f[1])
		if !seen[v] {
			seen[v] = true
			vs = append(vs, v)
		}
	}
	sort.SliceStable(vs, func(i, j int) bool { return debVersionLess(vs[j], vs[i]) })
	if len(vs) > 0 { // a missing package sends fetch to refresh the lists
		memo.Versions[pkg] = vs
		a.writeVersions(memo)
	}
	return vs, nil
}

// versionsFile, in the private apt directory, remembers the versions
// madison gave, with the fingerprint of the lists they came from.
const versionsFile = "versions.json"

type versionsMemo struct {
	Lists    string              `json:"lists"`
	Versions map[string][]string `json:"versions"`
}

// readVersions returns the remembered versions if they came from the
// lists as they are now, else an empty memo for them.
func (a *privateApt) readVersions() versionsMemo {
	fresh := versionsMemo{Lists: a.listsFingerprint(), Versions: map[string][]string{}}
	var m versionsMemo
	data, err := os.ReadFile(filepath.Join(a.dir, versionsFile))
	if err != nil || json.Unmarshal(data, &m) != nil || m.Lists != fresh.Lists || m.Versions == nil {
		return fresh
	}
	return m
}

// writeVersions keeps m (best effort: without it the next run asks apt).
func (a *privateApt) writeVersions(m versionsMemo) {
	data, err := json.Marshal(m)
	if err != nil {
		return
	}
	atomicfile.Write(filepath.Join(a.dir, versionsFile), data, 0o644)
}

// listsFingerprint names the package lists as they are: every file's
// name, size and modification time (apt update rewrites what changed).
func (a *privateApt) listsFingerprint() string {
	h := sha256.New()
	entries, _ := os.ReadDir(filepath.Join(a.dir, "lists"))
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			fmt.Fprintf(h, "%s %d %d\n", e.Name(), info.Size(), info.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// debVersionLess compares Debian versions with dpkg.
func debVersionLess(a, b string) bool {
	return exec.Command("dpkg", "--compare-versions", a, "lt", b).Run() == nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lastLine returns the last non-empty line of out, trimmed.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
