package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const patchA = `From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
From: Dev One <one@example.invalid>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH v2 1/2] fuse: first change
 with a folded subject

Body.
---
 fs/fuse/dev.c | 2 +-
 1 file changed, 1 insertion(+), 1 deletion(-)

diff --git a/fs/fuse/dev.c b/fs/fuse/dev.c
--- a/fs/fuse/dev.c
+++ b/fs/fuse/dev.c
@@ -1,3 +1,3 @@
 line 1
-line 2
+line 2 patched
 line 3
-- 
2.39.5

`

const patchB = `From 2222222222222222222222222222222222222222 Mon Sep 17 00:00:00 2001
From: Dev One <one@example.invalid>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH v2 2/2] fuse: second change

---
diff --git a/fs/fuse/dev.c b/fs/fuse/dev.c
--- a/fs/fuse/dev.c
+++ b/fs/fuse/dev.c
@@ -1,3 +1,3 @@
 line 1
-line 2 patched
+line 2 patched twice
 line 3
@@ -6,3 +6,3 @@
 line 6
-line 7
+line 7 patched
 line 8
-- 
2.39.5

`

const cover = `From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: Dev One <one@example.invalid>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH v2 0/2] fuse: a series

This cover letter mentions fs/fuse/dev.c but holds no diff.

Dev One (2):
  fuse: first change
  fuse: second change

-- 
2.39.5

`

func mustPatch(t *testing.T, name, text string) Patch {
	t.Helper()
	p, err := parsePatch(name, []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return *p
}

func TestLoadSeriesDirectoryOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "0002-second.patch"), patchB)
	writeFile(t, filepath.Join(dir, "0001-first.patch"), patchA)
	s, err := LoadSeries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Patches) != 2 || s.Patches[0].Name != "0001-first.patch" || s.Patches[1].Name != "0002-second.patch" {
		t.Fatalf("order: %+v", s.Patches)
	}
	if s.Patches[0].Subject != "fuse: first change with a folded subject" {
		t.Errorf("subject: %q", s.Patches[0].Subject)
	}
	// A series file overrides name order.
	writeFile(t, filepath.Join(dir, "series"), "# order\n0002-second.patch\n0001-first.patch\n")
	s, err = LoadSeries(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Patches[0].Name != "0002-second.patch" {
		t.Errorf("series file order ignored: %s first", s.Patches[0].Name)
	}
}

func TestLoadMboxSkipsCoverLetter(t *testing.T) {
	p := writeFile(t, filepath.Join(t.TempDir(), "v2.mbox"), cover+patchA+patchB)
	s, err := LoadSeries(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Patches) != 2 {
		t.Fatalf("got %d patches, want 2 (cover letter skipped)", len(s.Patches))
	}
	if s.Patches[0].Name != "0001-fuse-first-change-with-a-folded-subject" || s.Patches[1].Subject != "fuse: second change" {
		t.Errorf("patches: %q %q", s.Patches[0].Name, s.Patches[1].Subject)
	}
}

// patchEncoded is how git format-patch mails a patch whose subject and
// author are not ASCII: RFC 2047 encoded words, the long subject folded.
const patchEncoded = `From 3333333333333333333333333333333333333333 Mon Sep 17 00:00:00 2001
From: =?UTF-8?q?Ren=C3=A9=20D=C3=BCrr?= <rene@example.invalid>
Date: Thu, 1 Jan 2026 00:00:00 +0000
Subject: [PATCH 1/1] =?UTF-8?q?fuse:=20keep=20the=20r=C3=A9sum=C3=A9=20of=20a?=
 =?UTF-8?q?=20long=20encoded=20subject?=

---
diff --git a/fs/fuse/dev.c b/fs/fuse/dev.c
--- a/fs/fuse/dev.c
+++ b/fs/fuse/dev.c
@@ -1,3 +1,3 @@
 line 1
-line 2
+line 2 patched
 line 3
`

func TestMailHeader(t *testing.T) {
	for _, tc := range []struct {
		name, text, subject, author string
	}{
		{"folded subject", patchA, "fuse: first change with a folded subject", "Dev One <one@example.invalid>"},
		{"encoded and folded", patchEncoded, "fuse: keep the résumé of a long encoded subject", "René Dürr <rene@example.invalid>"},
		{"folded quoted author", "From: \"One, Dev\"\n\t<one@example.invalid>\nSubject: [PATCH]\n  =?iso-8859-1?q?caf=E9?=\n\nbody\n", "café", "One, Dev <one@example.invalid>"},
		{"unparsable author kept", "From: Dev One <one at example dot invalid>\nSubject: x\n\n", "x", "Dev One <one at example dot invalid>"},
		{"no headers", "diff --git a/f b/f\n--- a/f\n+++ b/f\n", "", ""},
	} {
		subject, author := mailHeader([]byte(tc.text))
		if subject != tc.subject || author != tc.author {
			t.Errorf("%s: got %q, %q; want %q, %q", tc.name, subject, author, tc.subject, tc.author)
		}
	}
}

func TestLoadMboxEncodedSubject(t *testing.T) {
	p := writeFile(t, filepath.Join(t.TempDir(), "utf8.mbox"), cover+patchEncoded)
	s, err := LoadSeries(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Patches) != 1 {
		t.Fatalf("got %d patches, want 1", len(s.Patches))
	}
	got := s.Patches[0]
	if got.Name != "0001-fuse-keep-the-r-sum-of-a-long-encoded-subject" || got.Subject != "fuse: keep the résumé of a long encoded subject" || got.Author != "René Dürr <rene@example.invalid>" {
		t.Errorf("patch: name %q, subject %q, author %q", got.Name, got.Subject, got.Author)
	}
}

func TestRefuseEmptyAndMalformed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "0001-empty.patch"), "\n")
	if _, err := LoadSeries(dir); err == nil || !strings.Contains(err.Error(), "0001-empty.patch is empty") {
		t.Errorf("empty: %v", err)
	}
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "0001-prose.patch"), "Subject: hello\n\njust words\n")
	if _, err := LoadSeries(dir); err == nil || !strings.Contains(err.Error(), "0001-prose.patch is malformed") {
		t.Errorf("malformed: %v", err)
	}
}

func applyIn(t *testing.T, patches ...Patch) (string, error) {
	tree := fakeTree(t)
	gitDir := filepath.Join(t.TempDir(), "series.git")
	_, err := Apply(context.Background(), tree, gitDir, &Series{Patches: patches})
	return tree, err
}

func TestApplyInOrderWithCommits(t *testing.T) {
	tree := fakeTree(t)
	gitDir := filepath.Join(t.TempDir(), "series.git")
	touched, err := Apply(context.Background(), tree, gitDir, &Series{Patches: []Patch{mustPatch(t, "1", patchA), mustPatch(t, "2", patchB)}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(tree, "fs/fuse/dev.c"))
	if !strings.Contains(string(got), "line 2 patched twice") || !strings.Contains(string(got), "line 7 patched") {
		t.Errorf("result: %q", got)
	}
	if len(touched) != 1 || touched[0] != "fs/fuse/dev.c" {
		t.Errorf("touched: %v", touched)
	}
	out, err := exec.Command("git", "--git-dir", gitDir, "log", "--format=%s").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != "fuse: second change\nfuse: first change with a folded subject\nbase" {
		t.Errorf("scratch history: %q", out)
	}
}

func TestApplyOutOfOrderNamesHunk(t *testing.T) {
	_, err := applyIn(t, mustPatch(t, "0002-second.patch", patchB))
	var ae *ApplyError
	if !errors.As(err, &ae) {
		t.Fatalf("want ApplyError, got %v", err)
	}
	if ae.Patch != "0002-second.patch" || ae.File != "fs/fuse/dev.c" || ae.Hunk != "#1 @@ -1,3 +1,3 @@" || ae.AlreadyApplied {
		t.Errorf("report: %+v", ae)
	}
	if !strings.Contains(ae.Error(), "0002-second.patch does not apply: fs/fuse/dev.c hunk #1") {
		t.Errorf("message: %s", ae.Error())
	}
}

func TestApplyDetectsAlreadyApplied(t *testing.T) {
	a := mustPatch(t, "0001-first.patch", patchA)
	_, err := applyIn(t, a, a)
	var ae *ApplyError
	if !errors.As(err, &ae) || !ae.AlreadyApplied || ae.Patch != "0001-first.patch" {
		t.Fatalf("want already-applied, got %v", err)
	}
}

func TestParsePicks(t *testing.T) {
	for spec, want := range map[string]string{"2": "[2]", "1,2": "[1 2]", "1-3": "[1 2 3]", "1-2,4": "[1 2 4]"} {
		got, err := ParsePicks(spec)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("%s: got %v %v, want %s", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "a", "3-1", "1-"} {
		if _, err := ParsePicks(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
