package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSplitGitSpec(t *testing.T) {
	cases := []struct {
		arg, repo, rev string
		url            bool
	}{
		{"/src/linux", "/src/linux", "", false},
		{"/src/linux@v6.19", "/src/linux", "v6.19", false},
		{"/src/a@b/linux@main", "/src/a@b/linux", "main", false},
		{"/src/linux@HEAD@{1}", "/src/linux", "HEAD@{1}", false},
		{"https://host/path/linux.git@v6.19-rc4", "https://host/path/linux.git", "v6.19-rc4", true},
		{"https://host/path/linux.git", "https://host/path/linux.git", "", true},
		{"file:///srv/linux.git@v6.19", "file:///srv/linux.git", "v6.19", true},
		{"ssh://git@host/x.git@main", "ssh://git@host/x.git", "main", true},
		{"ssh://git@host/x.git", "ssh://git@host/x.git", "", true},
		{"ssh://git@host:2222/x.git@for-next/core", "ssh://git@host:2222/x.git", "for-next/core", true},
		{"git@host:x.git@tag", "git@host:x.git", "tag", true},
		{"git@host:x.git", "git@host:x.git", "", true},
	}
	for _, c := range cases {
		repo, rev := splitGitSpec(c.arg)
		if repo != c.repo || rev != c.rev || isGitURL(repo) != c.url {
			t.Errorf("%s: got %q %q url=%v, want %q %q url=%v", c.arg, repo, rev, isGitURL(repo), c.repo, c.rev, c.url)
		}
	}
}

// remoteRepo makes a bare repository of a fake kernel: an untagged first
// commit, v6.19-rc4 (an annotated tag) and v6.19 (a lightweight tag, the
// head of main), each changing only src.c. It returns its file:// URL and
// the three commits.
func remoteRepo(t *testing.T) (url string, commits []string) {
	t.Helper()
	repo := fakeTree(t, "FUSE_FS")
	git(t, repo, "init", "-q", "-b", "main")
	for i, tag := range []string{"", "v6.19-rc4", "v6.19"} {
		writeFile(t, filepath.Join(repo, "src.c"), fmt.Sprintf("int main(void) { return %d; }\n", i))
		git(t, repo, "add", "-A")
		git(t, repo, "commit", "-q", "-m", fmt.Sprint("commit ", i))
		switch tag {
		case "v6.19-rc4":
			git(t, repo, "tag", "-a", "-m", tag, tag)
		case "v6.19":
			git(t, repo, "tag", tag)
		}
		commits = append(commits, git(t, repo, "rev-parse", "HEAD"))
	}
	bare := filepath.Join(t.TempDir(), "linux.git")
	git(t, repo, "clone", "-q", "--bare", repo, bare)
	return "file://" + bare, commits
}

func resolveOK(t *testing.T, c *Cache, spec string) *Tree {
	t.Helper()
	tree, err := Resolve(context.Background(), c, spec, NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// resolveErr resolves spec, which must fail with one line holding want.
func resolveErr(t *testing.T, c *Cache, spec, want string) {
	t.Helper()
	_, err := Resolve(context.Background(), c, spec, NopLogger{})
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Errorf("%s: error %v, want one line holding %q", spec, err, want)
	}
}

// TestRemoteGitTag resolves tags of a repository by URL: the commit is
// fetched shallowly into a mirror that then serves the tags, and commit
// ids, without the repository; a branch is always fetched again.
func TestRemoteGitTag(t *testing.T) {
	url, commits := remoteRepo(t)
	c := &Cache{Root: t.TempDir()}
	rc4 := resolveOK(t, c, "git:"+url+"@v6.19-rc4")
	if rc4.Commit != commits[1] || rc4.Version != "7.3.0" {
		t.Fatalf("tree %+v, want commit %s", rc4, commits[1])
	}
	if want := "git " + url + " v6.19-rc4 (commit " + commits[1] + ")"; rc4.Identity != want {
		t.Errorf("identity %q, want %q", rc4.Identity, want)
	}
	sum := sha256.Sum256([]byte(url))
	if mirror := c.Path("git", hex.EncodeToString(sum[:8])+".git"); rc4.Repo != mirror {
		t.Errorf("repo %s, want the mirror %s", rc4.Repo, mirror)
	}
	if _, err := os.Stat(filepath.Join(rc4.Repo, "shallow")); err != nil {
		t.Errorf("the mirror is not shallow: %v", err)
	}
	if n := git(t, rc4.Repo, "rev-list", "--count", commits[1]); n != "1" {
		t.Errorf("the mirror holds %s commits of history, want 1", n)
	}
	for _, spec := range []string{"git:" + url, "git:" + url + "@v6.19"} {
		if tree := resolveOK(t, c, spec); tree.Commit != commits[2] || tree.Repo != rc4.Repo || tree.lineage() != rc4.lineage() {
			t.Errorf("%s: %+v", spec, tree)
		}
	}
	first := resolveOK(t, c, "git:"+url+"@"+commits[0]) // named by no ref: fetched by id
	if first.Commit != commits[0] {
		t.Errorf("commit id: got %s, want %s", first.Commit, commits[0])
	}

	bare := strings.TrimPrefix(url, "file://")
	if err := os.Rename(bare, bare+".away"); err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[string]string{
		"git:" + url + "@v6.19-rc4":          commits[1],
		"git:" + url + "@refs/tags/v6.19":    commits[2],
		"git:" + url + "@" + commits[0]:      commits[0],
		"git:" + url + "@" + commits[1][:12]: commits[1],
	} {
		if got := resolveOK(t, c, spec); got.Commit != want {
			t.Errorf("%s offline: commit %s, want %s", spec, got.Commit, want)
		}
	}
	resolveErr(t, c, "git:"+url+"@main", "cannot reach "+url)
}

// TestRemoteGitChangedSince diffs two tags fetched shallowly into one
// mirror: no history is needed to list the files that differ.
func TestRemoteGitChangedSince(t *testing.T) {
	url, _ := remoteRepo(t)
	c := &Cache{Root: t.TempDir()}
	rc4 := resolveOK(t, c, "git:"+url+"@v6.19-rc4")
	final := resolveOK(t, c, "git:"+url+"@v6.19")
	changed, err := final.changedSince(context.Background(), rc4.Commit)
	if err != nil || !reflect.DeepEqual(changed, []string{"src.c"}) {
		t.Errorf("changedSince: %q, %v; want [src.c]", changed, err)
	}
}

// TestRemoteGitErrors checks that each failure is one clear line and
// leaves the mirror usable: unknown revision, unreachable URL, a commit
// without a kernel, a broken mirror and a lock left by a killed fetch.
func TestRemoteGitErrors(t *testing.T) {
	url, commits := remoteRepo(t)
	c := &Cache{Root: t.TempDir()}
	resolveErr(t, c, "git:"+url+"@v9.9", "revision v9.9 not found at "+url)
	resolveErr(t, c, "git:"+url+"@deadbeef", "give the full id")
	missing := "file://" + filepath.Join(t.TempDir(), "nothing.git")
	resolveErr(t, c, "git:"+missing+"@v6.19", "cannot reach "+missing)
	resolveErr(t, c, "git:"+missing+"@"+strings.Repeat("ab", 20), "cannot reach "+missing)
	git(t, t.TempDir(), "clone", "-q", "--bare", strings.TrimPrefix(url, "file://"), strings.TrimPrefix(missing, "file://"))
	if tree := resolveOK(t, c, "git:"+missing+"@v6.19"); tree.Commit != commits[2] {
		t.Errorf("once the URL exists: commit %s", tree.Commit)
	}

	notKernel := t.TempDir()
	git(t, notKernel, "init", "-q")
	writeFile(t, filepath.Join(notKernel, "README"), "hello\n")
	git(t, notKernel, "add", "-A")
	git(t, notKernel, "commit", "-q", "-m", "x")
	resolveErr(t, c, "git:file://"+notKernel, "is not a kernel tree")

	tree := resolveOK(t, c, "git:"+url+"@main")
	writeFile(t, filepath.Join(tree.Repo, "shallow.lock"), "")
	writeFile(t, filepath.Join(tree.Repo, "refs/fusevm/heads/main.lock"), "")
	if tree = resolveOK(t, c, "git:"+url+"@main"); tree.Commit != commits[2] {
		t.Errorf("after stale locks: commit %s", tree.Commit)
	}
	os.RemoveAll(tree.Repo)
	os.Mkdir(tree.Repo, 0o755) // as if a crash had left it empty
	if tree = resolveOK(t, c, "git:"+url+"@v6.19-rc4"); tree.Commit != commits[1] {
		t.Errorf("after a broken mirror: commit %s", tree.Commit)
	}
	if tmp := tempEntries(t, c.Root); len(tmp) != 0 {
		t.Errorf("temporaries left: %q", tmp)
	}
}

// TestRemoteGitBuild builds two tags of a remote repository: they share a
// workspace and the second build sees its sources.
func TestRemoteGitBuild(t *testing.T) {
	url, _ := remoteRepo(t)
	c := &Cache{Root: t.TempDir()}
	frag := writeFile(t, filepath.Join(t.TempDir(), "base.config"), "CONFIG_FUSE_FS=y\n")
	for i, tag := range []string{"v6.19-rc4", "v6.19"} {
		tree := resolveOK(t, c, "git:"+url+"@"+tag)
		art, err := Build(context.Background(), c, BuildSpec{Tree: tree, Fragments: []string{frag}, Jobs: 1}, NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		img, _ := os.ReadFile(art.BzImage)
		if want := fmt.Sprintf("return %d;", i+1); !strings.Contains(string(img), want) {
			t.Errorf("%s: bzImage %q, want %q", tag, img, want)
		}
		if art.Meta.Source != tree.Identity {
			t.Errorf("%s: meta source %q", tag, art.Meta.Source)
		}
	}
	if entries, _ := os.ReadDir(c.Path("work")); len(entries) != 1 {
		t.Errorf("%d workspaces, want 1 shared by both tags", len(entries))
	}
}

// tempEntries lists the ".tmp-" entries under root.
func tempEntries(t *testing.T, root string) []string {
	t.Helper()
	var tmp []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			tmp = append(tmp, p)
		}
		return nil
	})
	return tmp
}

// tarball packs a directory as a .tar.gz holding linux/..., as kernel.org
// does, and returns its bytes and digest.
func tarball(t *testing.T, dir string) ([]byte, string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "linux.tar.gz")
	if b, err := exec.Command("tar", "-czf", out, "-C", filepath.Dir(dir), filepath.Base(dir)).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// tarServer serves files by path and counts requests. A path in cut sends
// a Content-Length and then only half the body, once; a path in hang sends
// half the body and waits until the client goes.
type tarServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	cut   map[string]bool
	hang  map[string]bool
	hits  map[string]int
}

func newTarServer(t *testing.T) *tarServer {
	s := &tarServer{files: map[string][]byte{}, cut: map[string]bool{}, hang: map[string]bool{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *tarServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits[r.URL.Path]++
	data, ok := s.files[r.URL.Path]
	cut, hang := s.cut[r.URL.Path], s.hang[r.URL.Path]
	s.cut[r.URL.Path] = false
	s.mu.Unlock()
	switch {
	case !ok:
		http.NotFound(w, r)
	case cut:
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(data))
		buf.Write(data[:len(data)/2])
		buf.Flush()
		conn.Close()
	case hang:
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	default:
		w.Write(data)
	}
}

func (s *tarServer) add(path string, data []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = data
	return s.URL + path
}

func (s *tarServer) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// assertNothingCached checks that a failure left no download, no source
// tree and no temporary in the cache.
func assertNothingCached(t *testing.T, c *Cache) {
	t.Helper()
	for _, dir := range []string{"downloads", "src"} {
		if entries, _ := os.ReadDir(c.Path(dir)); len(entries) != 0 {
			t.Errorf("%s/ holds %d entries after a failure", dir, len(entries))
		}
	}
	if tmp := tempEntries(t, c.Root); len(tmp) != 0 {
		t.Errorf("temporaries left: %q", tmp)
	}
}

// TestTarballURL downloads a kernel tarball once: a second resolution is
// served from the cache.
func TestTarballURL(t *testing.T) {
	srv := newTarServer(t)
	data, sum := tarball(t, fakeTree(t))
	url := srv.add("/linux-7.3.tar.gz", data)
	c := &Cache{Root: t.TempDir()}
	for i := 0; i < 2; i++ {
		tree := resolveOK(t, c, "tarball:"+url+"#sha256="+sum)
		if tree.Version != "7.3.0" || !strings.Contains(tree.Identity, "sha256:"+sum) || !strings.Contains(tree.Identity, "linux-7.3.tar.gz") {
			t.Fatalf("tree %+v", tree)
		}
		if _, err := os.Stat(filepath.Join(tree.Dir, "arch/x86/Kconfig")); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.count("/linux-7.3.tar.gz"); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if tmp := tempEntries(t, c.Root); len(tmp) != 0 {
		t.Errorf("temporaries left: %q", tmp)
	}
}

// TestTarballURLRefused checks the failures of a download: each is one
// line naming its cause and leaves nothing in the cache.
func TestTarballURLRefused(t *testing.T) {
	srv := newTarServer(t)
	data, sum := tarball(t, fakeTree(t))
	url := srv.add("/linux.tar.gz", data)
	other := strings.Repeat("a", 64)

	c := &Cache{Root: t.TempDir()}
	resolveErr(t, c, "tarball:"+url+"#sha256="+other, "sha256 mismatch: downloaded "+sum+", want "+other)
	assertNothingCached(t, c)

	resolveErr(t, c, "tarball:"+srv.URL+"/nothing.tar.gz#sha256="+sum, "HTTP 404 Not Found")
	assertNothingCached(t, c)

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	resolveErr(t, c, "tarball:"+dead.URL+"/linux.tar.gz#sha256="+sum, "connection refused")
	assertNothingCached(t, c)

	srv.mu.Lock()
	srv.cut["/linux.tar.gz"] = true
	srv.mu.Unlock()
	resolveErr(t, c, "tarball:"+url+"#sha256="+sum, fmt.Sprintf("download interrupted after %d of %d bytes: unexpected EOF", len(data)/2, len(data)))
	assertNothingCached(t, c)
	if tree := resolveOK(t, c, "tarball:"+url+"#sha256="+sum); tree.Version != "7.3.0" {
		t.Errorf("after an interrupted download: %+v", tree)
	}
}

// TestTarballURLCorrupt refuses tarballs whose digest matches but whose
// content is no kernel: nothing is extracted.
func TestTarballURLCorrupt(t *testing.T) {
	srv := newTarServer(t)
	data, _ := tarball(t, fakeTree(t))
	truncated := data[:len(data)/2]
	sum := sha256.Sum256(truncated)
	notKernel := filepath.Join(t.TempDir(), "hello")
	writeFile(t, filepath.Join(notKernel, "README"), "hello\n")
	other, otherSum := tarball(t, notKernel)
	c := &Cache{Root: t.TempDir()}
	resolveErr(t, c, "tarball:"+srv.add("/cut.tar.gz", truncated)+"#sha256="+hex.EncodeToString(sum[:]), "cut.tar.gz is corrupt or not a kernel tarball (gzip: stdin: unexpected end of file)")
	resolveErr(t, c, "tarball:"+srv.add("/hello.tar.gz", other)+"#sha256="+otherSum, "hello.tar.gz does not hold a kernel tree")
	if entries, _ := os.ReadDir(c.Path("src")); len(entries) != 0 {
		t.Errorf("src/ holds %d entries", len(entries))
	}
	if tmp := tempEntries(t, c.Root); len(tmp) != 0 {
		t.Errorf("temporaries left: %q", tmp)
	}
}

// TestTarballURLCancelAndStall abandons a download whose server stops
// sending: when the context is cancelled, and when nothing arrives for
// downloadStall.
func TestTarballURLCancelAndStall(t *testing.T) {
	srv := newTarServer(t)
	data, sum := tarball(t, fakeTree(t))
	url := srv.add("/slow.tar.gz", data)
	srv.mu.Lock()
	srv.hang["/slow.tar.gz"] = true
	srv.mu.Unlock()
	c := &Cache{Root: t.TempDir()}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Resolve(ctx, c, "tarball:"+url+"#sha256="+sum, NopLogger{})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "download") {
		t.Errorf("cancelled: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancellation took %v", d)
	}
	assertNothingCached(t, c)

	defer func(d time.Duration) { downloadStall = d }(downloadStall)
	downloadStall = 300 * time.Millisecond
	resolveErr(t, c, "tarball:"+url+"#sha256="+sum, "stalled: nothing received for 300ms")
	assertNothingCached(t, c)
}
