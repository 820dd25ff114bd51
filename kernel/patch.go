package kernel

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"fusevm/internal/lazyre"
)

// Patch is one patch of a series, as a kernel developer mails it.
type Patch struct {
	// Name is the file name (or, for an mbox, "NNNN-subject").
	Name string `json:"name"`
	// Subject is the mail subject without the [PATCH ...] tag.
	Subject string `json:"subject"`
	// Author is the From: header, if any.
	Author string `json:"author,omitempty"`
	// Data is the whole patch text.
	Data []byte `json:"-"`
	// Files are the tree-relative paths the diff touches (old and new names).
	Files []string `json:"files"`
}

// Digest is the sha256 of the patch text.
func (p *Patch) Digest() string {
	s := sha256.Sum256(p.Data)
	return hex.EncodeToString(s[:])
}

// Series is an ordered list of patches. The zero Series is the baseline.
type Series struct {
	// Source is where the series was loaded from ("" for the baseline).
	Source  string  `json:"source,omitempty"`
	Patches []Patch `json:"patches"`
}

// Select returns the series made of the given patches (1-based numbers,
// in the order given).
func (s *Series) Select(numbers []int) (*Series, error) {
	out := &Series{Source: fmt.Sprintf("%s%v", s.Source, numbers)}
	for _, n := range numbers {
		if n < 1 || n > len(s.Patches) {
			return nil, fmt.Errorf("patch %d: the series %s has %d patches", n, s.Source, len(s.Patches))
		}
		out.Patches = append(out.Patches, s.Patches[n-1])
	}
	return out, nil
}

// ParsePicks parses a patch selection: "2", "1,2", "1-3", "1-2,4".
func ParsePicks(spec string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(spec, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 1 {
			return nil, fmt.Errorf("bad patch selection %q: want numbers like 2, 1,2 or 1-3", spec)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("bad patch selection %q: want numbers like 2, 1,2 or 1-3", spec)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// LoadSeries reads a series from a directory of *.patch files (in name
// order, or in the order of a "series" file inside it), a quilt-style series
// file, or an mbox (git format-patch --stdout, b4 am; cover letters and
// other messages without a diff are skipped). An empty or malformed patch
// is refused with its name.
func LoadSeries(path string) (*Series, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("patch series: %w", err)
	}
	s := &Series{Source: path}
	switch {
	case st.IsDir():
		if _, err := os.Stat(filepath.Join(path, "series")); err == nil {
			return loadSeriesFile(filepath.Join(path, "series"))
		}
		names, _ := filepath.Glob(filepath.Join(path, "*.patch"))
		sort.Strings(names)
		for _, n := range names {
			p, err := loadPatchFile(n)
			if err != nil {
				return nil, err
			}
			s.Patches = append(s.Patches, *p)
		}
	case filepath.Base(path) == "series":
		return loadSeriesFile(path)
	default:
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("patch series: %w", err)
		}
		if s.Patches, err = splitMbox(filepath.Base(path), data); err != nil {
			return nil, err
		}
	}
	if len(s.Patches) == 0 {
		return nil, fmt.Errorf("patch series %s: no patches found", path)
	}
	return s, nil
}

func loadSeriesFile(path string) (*Series, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("patch series: %w", err)
	}
	s := &Series{Source: path}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := strings.Fields(line)[0]
		p, err := loadPatchFile(filepath.Join(filepath.Dir(path), name))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+1, err)
		}
		s.Patches = append(s.Patches, *p)
	}
	if len(s.Patches) == 0 {
		return nil, fmt.Errorf("patch series %s: no patches listed", path)
	}
	return s, nil
}

func loadPatchFile(path string) (*Patch, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("patch %s: %w", filepath.Base(path), err)
	}
	p, err := parsePatch(filepath.Base(path), data)
	if err != nil {
		return nil, err
	}
	return p, nil
}

var (
	diffGitRe  = lazyre.New(`(?m)^diff --git a/(\S+) b/(\S+)$`)
	plusFileRe = lazyre.New(`(?m)^\+\+\+ (?:b/)?(\S+)`)
	subjTagRe  = lazyre.New(`^\[[^\]]*\]\s*`)
)

// ParsePatch reads one patch text (a mail made by git format-patch, or a
// bare diff) called name: its subject without the [PATCH ...] tag, its
// author and the files it touches. A text without diff hunks is refused as
// malformed.
func ParsePatch(name string, data []byte) (*Patch, error) {
	return parsePatch(name, data)
}

// parsePatch extracts headers and touched files; a text with no diff is
// malformed.
func parsePatch(name string, data []byte) (*Patch, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("patch %s is empty", name)
	}
	p := &Patch{Name: name, Data: data}
	p.Subject, p.Author = mailHeader(data)
	seen := map[string]bool{}
	add := func(f string) {
		if f != "/dev/null" && !seen[f] {
			seen[f] = true
			p.Files = append(p.Files, f)
		}
	}
	for _, m := range diffGitRe().FindAllStringSubmatch(string(data), -1) {
		add(m[1])
		add(m[2])
	}
	if len(p.Files) == 0 {
		for _, m := range plusFileRe().FindAllStringSubmatch(string(data), -1) {
			add(m[1])
		}
	}
	if len(p.Files) == 0 || !bytes.Contains(data, []byte("\n@@ ")) && !bytes.Contains(data, []byte("GIT binary patch")) {
		if !bytes.Contains(data, []byte("rename from ")) && !bytes.Contains(data, []byte("deleted file mode")) {
			return nil, fmt.Errorf("patch %s is malformed: no diff hunks found", name)
		}
	}
	if p.Subject == "" {
		p.Subject = strings.TrimSuffix(name, ".patch")
	}
	return p, nil
}

// mailHeader returns the subject (without its [PATCH ...] tag) and the
// author of a mailed patch, read with net/mail from the headers at its top
// (after an mbox "From " line, if any): folded lines are unfolded and RFC
// 2047 encoded words ("=?UTF-8?q?...?=") decoded. A text that does not
// start with headers has neither.
func mailHeader(data []byte) (subject, author string) {
	if bytes.HasPrefix(data, []byte("From ")) {
		_, data, _ = bytes.Cut(data, []byte("\n"))
	}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return "", ""
	}
	dec := new(mime.WordDecoder)
	subject = msg.Header.Get("Subject")
	if s, err := dec.DecodeHeader(subject); err == nil {
		subject = s
	}
	author = msg.Header.Get("From")
	if a, err := (&mail.AddressParser{WordDecoder: dec}).Parse(author); err == nil {
		author = a.Address
		if a.Name != "" {
			author = a.Name + " <" + a.Address + ">"
		}
	} else if s, err := dec.DecodeHeader(author); err == nil {
		author = s
	}
	return subjTagRe().ReplaceAllString(subject, ""), author
}

var mboxFromRe = lazyre.New(`(?m)^From [^\s]+ .*\d{4}$|^From [0-9a-f]{40} `)

// splitMbox splits an mbox into patches, skipping messages without a diff
// (the cover letter).
func splitMbox(name string, data []byte) ([]Patch, error) {
	locs := mboxFromRe().FindAllIndex(data, -1)
	if len(locs) == 0 {
		p, err := parsePatch(name, data)
		if err != nil {
			return nil, err
		}
		return []Patch{*p}, nil
	}
	var out []Patch
	for i, loc := range locs {
		end := len(data)
		if i+1 < len(locs) {
			end = locs[i+1][0]
		}
		msg := data[loc[0]:end]
		if !diffGitRe().Match(msg) && !plusFileRe().Match(msg) {
			continue // cover letter or reply
		}
		subj, _ := mailHeader(msg)
		pname := fmt.Sprintf("%04d-%s", len(out)+1, slug(subj))
		p, err := parsePatch(pname, msg)
		if err != nil {
			return nil, fmt.Errorf("mbox %s message %d: %w", name, i+1, err)
		}
		out = append(out, *p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("mbox %s holds no patches", name)
	}
	return out, nil
}

func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 52 {
			break
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// ApplyError says why a patch could not be applied. It maps to the SKIP
// verdict (125 in bisect mode).
type ApplyError struct {
	Patch          string
	File           string
	Hunk           string // e.g. "#2 @@ -2631,7 +2631,9 @@"
	AlreadyApplied bool
	Detail         string
}

func (e *ApplyError) Error() string {
	if e.AlreadyApplied {
		return fmt.Sprintf("patch %s is already applied to this tree", e.Patch)
	}
	msg := fmt.Sprintf("patch %s does not apply", e.Patch)
	if e.File != "" {
		msg += ": " + e.File
	}
	if e.Hunk != "" {
		msg += " hunk " + e.Hunk
	}
	if e.File == "" && e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Apply applies s to the tree at dir, patch by patch: each is checked first
// (git apply --check; on failure a reverse check tells "already applied"),
// then applied, then committed into a scratch git repository gitDir whose
// work tree is dir and which tracks only the files the series touches (so
// tools can bisect inside the series cheaply). Hardlinked files are copied
// before they are changed, so a hardlinked workspace never writes through
// to the cache. It returns every path the series touched.
func Apply(ctx context.Context, dir, gitDir string, s *Series) ([]string, error) {
	if s == nil || len(s.Patches) == 0 {
		return nil, nil
	}
	os.RemoveAll(gitDir)
	g := func(stdin []byte, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_DIR="+gitDir, "GIT_WORK_TREE="+dir,
			"GIT_AUTHOR_NAME=fusevm", "GIT_AUTHOR_EMAIL=fusevm@localhost",
			"GIT_COMMITTER_NAME=fusevm", "GIT_COMMITTER_EMAIL=fusevm@localhost",
			"GIT_AUTHOR_DATE=1970-01-01T00:00:00Z", "GIT_COMMITTER_DATE=1970-01-01T00:00:00Z")
		if stdin != nil {
			cmd.Stdin = bytes.NewReader(stdin)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return out, fmt.Errorf("git %s: %v: %s", args[0], err, lastLine(out))
		}
		return out, nil
	}
	if _, err := g(nil, "init", "-q"); err != nil {
		return nil, err
	}
	var touched []string
	seen := map[string]bool{}
	for _, p := range s.Patches {
		for _, f := range p.Files {
			if !seen[f] {
				seen[f] = true
				touched = append(touched, f)
			}
		}
	}
	var base []string
	for _, f := range touched {
		if err := unshare(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("prepare %s: %w", f, err)
		}
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			base = append(base, f)
		}
	}
	if len(base) > 0 {
		if _, err := g(nil, append([]string{"add", "-f", "--"}, base...)...); err != nil {
			return nil, err
		}
	}
	if _, err := g(nil, "commit", "-q", "--allow-empty", "-m", "base"); err != nil {
		return nil, err
	}
	for _, p := range s.Patches {
		if out, err := g(p.Data, "apply", "--check", "-"); err != nil {
			if _, rerr := g(p.Data, "apply", "--check", "--reverse", "-"); rerr == nil {
				return touched, &ApplyError{Patch: p.Name, AlreadyApplied: true}
			}
			return touched, conflict(p, out)
		}
		if _, err := g(p.Data, "apply", "--index", "-"); err != nil {
			return touched, &ApplyError{Patch: p.Name, Detail: err.Error()}
		}
		msg := p.Subject
		if p.Author != "" {
			msg += "\n\nOriginal-Author: " + p.Author
		}
		if _, err := g(nil, "commit", "-q", "--allow-empty", "-m", msg); err != nil {
			return touched, err
		}
	}
	return touched, nil
}

var applyFailRe = lazyre.New(`error: patch failed: (\S+):(\d+)`)

// conflict builds an ApplyError from git apply's complaint, naming the file
// and the hunk (its ordinal within that file and its header).
func conflict(p Patch, out []byte) error {
	e := &ApplyError{Patch: p.Name, Detail: lastLine(out)}
	m := applyFailRe().FindSubmatch(out)
	if m == nil {
		if f := regexp.MustCompile(`error: (\S+): No such file or directory`).FindSubmatch(out); f != nil {
			e.File = string(f[1]) + " (missing in the tree)"
		}
		return e
	}
	e.File = string(m[1])
	line := string(m[2])
	// Find the hunk of that file whose old-start is the reported line.
	inFile, n := false, 0
	for _, l := range strings.Split(string(p.Data), "\n") {
		if strings.HasPrefix(l, "diff --git ") {
			inFile = strings.HasSuffix(l, " b/"+e.File)
			n = 0
			continue
		}
		if inFile && strings.HasPrefix(l, "@@ -") {
			n++
			start := strings.TrimPrefix(l, "@@ -")
			if i := strings.IndexAny(start, ", "); i >= 0 {
				start = start[:i]
			}
			if start == line {
				hdr := l
				if j := strings.Index(l[2:], "@@"); j >= 0 {
					hdr = l[:j+4]
				}
				e.Hunk = fmt.Sprintf("#%d %s", n, hdr)
				break
			}
		}
	}
	if e.Hunk == "" {
		e.Hunk = "at line " + line
	}
	return e
}

// unshare replaces a hardlinked file by a private copy.
func unshare(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	if nlink(st) <= 1 {
		return nil
	}
	tmp := path + ".fusevm-unshare"
	if err := CopyFile(path, tmp, st.Mode().Perm()); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
