package bisect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Commit is the revision a bisect step tests.
type Commit struct {
	// Repo is the repository's directory, absolute.
	Repo    string
	Hash    string
	Subject string
}

// Revision finds the commit a bisect step tests in the repository at repo,
// which it only reads: BISECT_HEAD under "git bisect start --no-checkout"
// (no work tree is written, and bare repositories work), else HEAD of a
// work tree without uncommitted changes (with them too when allowDirty:
// they are not tested).
func Revision(ctx context.Context, repo string, allowDirty bool) (Commit, error) {
	gitDir, err := git(ctx, repo, "rev-parse", "--absolute-git-dir")
	if err != nil {
		return Commit{}, fmt.Errorf("%s is not a git repository: %w", repo, err)
	}
	c := Commit{}
	rev := "HEAD"
	if _, err := os.Stat(filepath.Join(gitDir, "BISECT_HEAD")); err == nil {
		rev = "BISECT_HEAD"
		if c.Repo, err = filepath.Abs(repo); err != nil {
			return Commit{}, fmt.Errorf("repository %s: %w", repo, err)
		}
	} else {
		if c.Repo, err = git(ctx, repo, "rev-parse", "--show-toplevel"); err != nil {
			return Commit{}, fmt.Errorf("%s has no work tree: bisect it with git bisect start --no-checkout: %w", repo, err)
		}
		if !allowDirty {
			dirty, err := git(ctx, c.Repo, "status", "--porcelain", "--untracked-files=no")
			if err != nil {
				return Commit{}, err
			}
			if dirty != "" {
				return Commit{}, fmt.Errorf("%s has uncommitted changes, which the build (of the committed HEAD) would not include: commit or stash them, or pass --allow-dirty", c.Repo)
			}
		}
	}
	out, err := git(ctx, c.Repo, "log", "-1", "--format=%H%x00%s", rev)
	if err != nil {
		return Commit{}, fmt.Errorf("%s: no commit %s: %w", c.Repo, rev, err)
	}
	c.Hash, c.Subject, _ = strings.Cut(out, "\x00")
	return c, nil
}

// git runs git in dir and returns its output, trimmed; its error carries
// what git printed on stderr.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
		}
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return strings.TrimSpace(string(out)), nil
}

// StepRecord is one line of a bisect-step log.
type StepRecord struct {
	Time    time.Time `json:"time"`
	Commit  string    `json:"commit"`
	Subject string    `json:"subject"`
	Class   string    `json:"class"`
	Exit    int       `json:"exit"`
	Runs    []Run     `json:"runs"`
}

// AppendLog appends rec as one JSON line to the log at path, making its
// directory if needed.
func AppendLog(path string, rec StepRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("bisect log: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("bisect log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("bisect log: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	return errors.Join(err, f.Close())
}
