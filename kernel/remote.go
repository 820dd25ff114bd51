package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"fusevm/internal/lazyre"
)

// splitGitSpec splits REPO[@REV] at the last '@' whose suffix holds no ':'
// (git@host:x.git has no revision) and does not lie in a URL's host part
// (ssh://git@host/x.git has none either). A reflog selector such as
// HEAD@{1} stays in the revision.
func splitGitSpec(arg string) (repo, rev string) {
	i := strings.LastIndex(arg, "@")
	for i > 0 && strings.HasPrefix(arg[i+1:], "{") {
		i = strings.LastIndex(arg[:i], "@")
	}
	if i < 0 || strings.Contains(arg[i+1:], ":") {
		return arg, ""
	}
	if s := strings.Index(arg, "://"); s >= 0 {
		host := arg[s+3:]
		if slash := strings.Index(host, "/"); slash >= 0 {
			host = host[:slash]
		}
		if i < s+3+len(host) {
			return arg, ""
		}
	}
	return arg[:i], arg[i+1:]
}

// scpLikeRe matches git's scp-like remote syntax, user@host:path.
var scpLikeRe = lazyre.New(`^[^-/@:][^/@:]*@[^/:]+:`)

// isGitURL tells a remote repository from a local path.
func isGitURL(repo string) bool {
	return strings.Contains(repo, "://") || scpLikeRe().MatchString(repo)
}

var (
	fullCommitRe   = lazyre.New(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	abbrevCommitRe = lazyre.New(`^[0-9a-f]{7,64}$`)
)

// fetchRemote returns the cache's mirror of url (a bare repository,
// git/<hash of url>.git) and the commit rev names there. Each revision is
// fetched shallowly, only its commit and no history, under
// refs/fusevm/<remote ref>. A tag or commit id already fetched is served
// from the mirror without the network (tags are taken as immutable); a
// branch or HEAD is fetched again every time.
func fetchRemote(ctx context.Context, c *Cache, url, rev string, log Logger) (mirror, commit string, err error) {
	if strings.HasPrefix(url, "-") || strings.HasPrefix(rev, "-") {
		return "", "", fmt.Errorf("%w: neither URL nor revision may begin with '-'", ErrBadSpec)
	}
	sum := sha256.Sum256([]byte(url))
	key := hex.EncodeToString(sum[:8])
	if mirror, err = filepath.Abs(c.Path("git", key+".git")); err != nil {
		return "", "", err
	}
	unlock, err := c.Lock(ctx, "git-"+key)
	if err != nil {
		return "", "", err
	}
	defer unlock()
	if commit = cachedCommit(ctx, mirror, rev); commit != "" {
		return mirror, commit, nil
	}
	if err := ensureMirror(ctx, mirror); err != nil {
		return "", "", fmt.Errorf("git mirror %s: %w", mirror, err)
	}
	ref, err := remoteRef(ctx, mirror, url, rev)
	if err != nil {
		return "", "", err
	}
	src, dst := ref, "refs/fusevm/"+strings.TrimPrefix(ref, "refs/")
	if ref == "" { // a full commit id that no ref names: fetch it by id
		src, dst = rev, "refs/fusevm/commits/"+rev
	}
	what := "fetch " + url + " " + rev
	log.Stage(what)
	start := time.Now()
	if _, err := gitRun(ctx, mirror, "fetch", "-q", "--depth=1", "--no-tags", "--", url, "+"+src+":"+dst); err != nil {
		if ref == "" {
			return "", "", fmt.Errorf("revision %s not found at %s (%v)", rev, url, err)
		}
		return "", "", annotateNoSpace(fmt.Errorf("fetch %s from %s: %w", rev, url, err), mirror)
	}
	log.Done(what, time.Since(start))
	if commit, err = gitRun(ctx, mirror, "rev-parse", "--verify", "--quiet", dst+"^{commit}"); err != nil {
		return "", "", fmt.Errorf("revision %s at %s is not a commit", rev, url)
	}
	return mirror, commit, nil
}

// cachedCommit returns the commit rev names in mirror if it is there for
// good: a tag fetched before, or a commit id. It returns "" otherwise.
func cachedCommit(ctx context.Context, mirror, rev string) string {
	names := []string{"refs/fusevm/tags/" + strings.TrimPrefix(strings.TrimPrefix(rev, "refs/"), "tags/")}
	if abbrevCommitRe().MatchString(rev) {
		names = append(names, rev)
	}
	for _, name := range names {
		if commit, err := gitRun(ctx, mirror, "rev-parse", "--verify", "--quiet", name+"^{commit}"); err == nil {
			return commit
		}
	}
	return ""
}

// remoteRef asks url which ref rev names, preferring as git does the
// exact name, then refs/REV, refs/tags/REV and refs/heads/REV. It returns
// "" for a full commit id no ref names.
func remoteRef(ctx context.Context, mirror, url, rev string) (string, error) {
	out, err := gitRun(ctx, mirror, "ls-remote", "--", url, rev)
	if err != nil {
		return "", fmt.Errorf("cannot reach %s: %v", url, err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(out, "\n") {
		if _, ref, ok := strings.Cut(line, "\t"); ok {
			have[ref] = true
		}
	}
	for _, ref := range []string{rev, "refs/" + rev, "refs/tags/" + rev, "refs/heads/" + rev} {
		if have[ref] {
			return ref, nil
		}
	}
	switch {
	case fullCommitRe().MatchString(rev):
		return "", nil
	case abbrevCommitRe().MatchString(rev):
		return "", fmt.Errorf("revision %s not found at %s (an abbreviated commit id is known only once fetched: give the full id)", rev, url)
	}
	return "", fmt.Errorf("revision %s not found at %s", rev, url)
}

// ensureMirror makes mirror a bare repository, atomically, re-creating it
// when it is broken, and clears the lock files a killed git left in it.
// The caller holds the mirror's lock.
func ensureMirror(ctx context.Context, mirror string) error {
	if out, err := gitRun(ctx, mirror, "rev-parse", "--is-bare-repository"); err == nil && out == "true" {
		return filepath.WalkDir(mirror, func(p string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.IsDir() && d.Name() == "objects":
				return filepath.SkipDir
			case !d.IsDir() && strings.HasSuffix(d.Name(), ".lock"):
				return os.Remove(p)
			}
			return nil
		})
	}
	if err := os.RemoveAll(mirror); err != nil {
		return err
	}
	sweepTempOf(mirror)
	return Publish(mirror, func(tmp string) error {
		if _, err := gitRun(ctx, "", "init", "-q", "--bare", "--template=", tmp); err != nil {
			return err
		}
		// No automatic gc: it would race with builds reading the mirror
		// and prune commits a workspace records.
		if _, err := gitRun(ctx, tmp, "config", "gc.auto", "0"); err != nil {
			return err
		}
		_, err := gitRun(ctx, tmp, "config", "maintenance.auto", "false")
		return err
	})
}

// gitRun runs git on the repository gitDir (none when empty), never
// prompting for credentials and giving up on an HTTP transfer stalled for
// downloadStall, and returns its trimmed output or an error holding git's
// first complaint.
func gitRun(ctx context.Context, gitDir string, args ...string) (string, error) {
	opts := []string{"-c", "http.lowSpeedLimit=1", "-c", fmt.Sprintf("http.lowSpeedTime=%d", int(downloadStall.Seconds()))}
	if gitDir != "" {
		opts = append(opts, "--git-dir="+gitDir)
	}
	cmd := exec.CommandContext(ctx, "git", append(opts, args...)...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	cmd.WaitDelay = 5 * time.Second // a killed fetch's helpers may hold its stderr open
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if msg := firstLine(stderr.Bytes()); msg != "" {
			return "", errors.New(strings.TrimPrefix(strings.TrimPrefix(msg, "fatal: "), "error: "))
		}
		return "", fmt.Errorf("git %s: %w", args[0], err)
	}
	return strings.TrimSpace(string(out)), nil
}

// downloadStall is how long a download may receive nothing (connecting,
// waiting for the response, or within the body) before it is abandoned.
var downloadStall = 2 * time.Minute

// fetchURL writes the body of url to path, durably, and checks that its
// sha256 is want.
func fetchURL(ctx context.Context, rawURL, path, want string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stall := time.AfterFunc(downloadStall, func() {
		cancel(fmt.Errorf("stalled: nothing received for %v", downloadStall))
	})
	defer stall.Stop()
	req, err := http.NewRequestWithContext(ctx, "GET", rawURL, nil)
	if err != nil {
		return fmt.Errorf("download: %w", err)
	}
	// The exact bytes: no transparent gunzip of a .tar.gz served with
	// Content-Encoding: gzip.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("download: %w", context.Cause(ctx))
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download: HTTP %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &stallReader{resp.Body, stall})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		if resp.ContentLength >= 0 {
			return fmt.Errorf("download interrupted after %d of %d bytes: %w", n, resp.ContentLength, err)
		}
		return fmt.Errorf("download interrupted after %d bytes: %w", n, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 mismatch: downloaded %s, want %s", got, want)
	}
	return nil
}

// stallReader restarts the stall timer whenever data arrives.
type stallReader struct {
	r     io.Reader
	stall *time.Timer
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.stall.Reset(downloadStall)
	}
	return n, err
}

// firstLine returns the first non-empty line of out, trimmed.
func firstLine(out []byte) string {
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
