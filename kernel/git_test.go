package kernel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestGitCommitsShareAWorkspace builds two commits of one repository: the
// second build rewrites only the file that changed, and the user's
// repository (HEAD, index, work tree) is untouched.
func TestGitCommitsShareAWorkspace(t *testing.T) {
	repo := fakeTree(t, "FUSE_FS")
	git(t, repo, "init", "-q")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "one")
	first := git(t, repo, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(repo, "src.c"), "int main(void) { return 1; }\n")
	git(t, repo, "commit", "-q", "-am", "two")
	second := git(t, repo, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(repo, "untracked.txt"), "mine")
	statusBefore := git(t, repo, "status", "--porcelain")

	c := &Cache{Root: t.TempDir()}
	frag := writeFile(t, filepath.Join(t.TempDir(), "base.config"), "CONFIG_FUSE_FS=y\n")
	ctx := context.Background()
	build := func(rev string) *Artifact {
		tree, err := Resolve(ctx, c, "git:"+repo+"@"+rev, NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		if tree.Version != "7.3.0" || tree.Commit != rev {
			t.Fatalf("tree %+v", tree)
		}
		art, err := Build(ctx, c, BuildSpec{Tree: tree, Fragments: []string{frag}, Jobs: 1}, NopLogger{})
		if err != nil {
			t.Fatal(err)
		}
		return art
	}
	build(first)
	tree, _ := Resolve(ctx, c, "git:"+repo+"@"+first, NopLogger{})
	ws := c.Path("work", tree.lineage(), "linux")
	before, _ := os.Stat(filepath.Join(ws, "fs/fuse/dev.c"))
	art := build(second)
	img, _ := os.ReadFile(art.BzImage)
	if !strings.Contains(string(img), "return 1") {
		t.Errorf("second build used stale sources: %q", img)
	}
	after, _ := os.Stat(filepath.Join(ws, "fs/fuse/dev.c"))
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Error("an unchanged file was rewritten between commits")
	}
	if git(t, repo, "rev-parse", "HEAD") != second || git(t, repo, "status", "--porcelain") != statusBefore {
		t.Error("the user's repository changed")
	}
	if entries, _ := os.ReadDir(c.Path("src")); len(entries) != 0 {
		t.Errorf("git sources were extracted into the cache: %d entries", len(entries))
	}
}
