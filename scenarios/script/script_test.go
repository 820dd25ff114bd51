package script

import (
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	s, err := Parse("demo", "demo.fvm", `# a comment
needs: close_all_ioctl, same_inode_reuse
timeout: 90s
description: a demo

backing 16M
file a.txt "hello # not a comment"   # a comment
mount recovery=close-all id-per-open
open h1 a.txt rw => ok
open h2 a.txt => same_inode_reuse ? ok : EIO
repeat 3
  crash
  restart recovery=close-all
end
race 2s
  thread
    ioctl close-all => any
  end
  thread
    open h a.txt => any
  end
end
`)
	if err != nil {
		t.Fatal(err)
	}
	if s.Timeout != 90*time.Second || s.Description != "a demo" || strings.Join(s.Needs, ",") != "close_all_ioctl,same_inode_reuse" {
		t.Errorf("headers: %+v", s)
	}
	if len(s.Steps) != 7 {
		t.Fatalf("%d top-level steps, want 7", len(s.Steps))
	}
	file := s.Steps[1]
	if txt, q := IsQuoted(file.Args[1]); !q || txt != "hello # not a comment" || file.Line != 7 {
		t.Errorf("file step: %+v", file)
	}
	open2 := s.Steps[4]
	if open2.Expect.Resolve(map[string]bool{"same_inode_reuse": true}) != "ok" || open2.Expect.Resolve(nil) != "EIO" {
		t.Errorf("conditional outcome: %+v", open2.Expect)
	}
	if rep := s.Steps[5]; rep.Op != "repeat" || len(rep.Body) != 2 || rep.Body[1].Args[0] != "recovery=close-all" {
		t.Errorf("repeat block: %+v", rep)
	}
	if race := s.Steps[6]; len(race.Body) != 2 || race.Body[0].Body[0].Expect.Resolve(nil) != Any {
		t.Errorf("race block: %+v", race)
	}
	if (*Outcome)(nil).Resolve(nil) != "ok" {
		t.Error("a step without => must expect ok")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ text, want string }{
		{"frobnicate x", "x.fvm:1: unknown step \"frobnicate\""},
		{"open h1", "x.fvm:1: open: want 2 operand(s), got 1"},
		{"backing 16Q", "x.fvm:1: backing: operand 1 \"16Q\" is not a valid size"},
		{"backing 16M\nopen H1 a.txt", "x.fvm:2: open: operand 1 \"H1\" is not a valid handle name"},
		{"open h /etc/passwd", "x.fvm:1: open: operand 2 \"/etc/passwd\" is not a valid relative path"},
		{"file a.txt bare", "x.fvm:1: file: operand 2 \"bare\" is not a valid quoted string or $var"},
		{"file a.txt \"open", "x.fvm:1: unterminated string"},
		{"crash => maybe", "x.fvm:1: bad outcome \"maybe\""},
		{"crash => claim ? ok", "x.fvm:1: conditional outcome must be CLAIM ? OUTCOME : OUTCOME"},
		{"repeat 2\ncrash", "x.fvm:1: repeat block is never closed with end"},
		{"crash\nend", "x.fvm:2: end without an open block"},
		{"repeat 2\nend", "x.fvm:2: empty repeat block (opened at line 1)"},
		{"race 1s\ncrash\nend", "x.fvm:2: a race block holds only thread blocks"},
		{"thread\ncrash\nend", "x.fvm:1: thread outside a race block"},
		{"nedds: x\ncrash", "x.fvm:1: unknown header \"nedds\""},
		{"timeout: soon\ncrash", "x.fvm:1: bad timeout \"soon\""},
		{"# only a comment\n", "x.fvm:1: script has no steps"},
		{"repeat 2 => ok\ncrash\nend", "x.fvm:1: repeat is a block and takes no outcome"},
		{"sleep -1s", "x.fvm:1: sleep: operand 1 \"-1s\" is not a valid duration"},
		// Connections and backing filesystems are declared before use.
		{"backing 1M\nfile alt:a.txt \"a\"", "x.fvm:2: file: no backing filesystem \"alt\" is mounted before (backing SIZE as=alt)"},
		{"file alt:a.txt \"a\"\nbacking 1M as=alt", "x.fvm:1: file: no backing filesystem \"alt\""},
		{"fill alt:a 1K", "x.fvm:1: fill: no backing filesystem \"alt\""},
		{"unlink-backing alt:a", "x.fvm:1: unlink-backing: no backing filesystem \"alt\""},
		{"backing 1M as=alt\nlink-backing alt:a other:b", "x.fvm:2: link-backing: no backing filesystem \"other\""},
		{"backing-ino alt:a as=x", "x.fvm:1: backing-ino: no backing filesystem \"alt\""},
		{"ioctl backing-open alt:a as=x", "x.fvm:1: ioctl: no backing filesystem \"alt\""},
		{"ioctl backing-open /etc/passwd", "x.fvm:1: ioctl: \"/etc/passwd\" is not a valid backing path"},
		{"free-space on=alt as=x", "x.fvm:1: free-space: no backing filesystem \"alt\""},
		{"umount-backing alt", "x.fvm:1: umount-backing: no backing filesystem \"alt\""},
		{"backing 1M as=alt\numount-backing alt alt", "x.fvm:2: umount-backing: want at most one backing filesystem name"},
		{"mount as=other\nuse main", "x.fvm:2: use: no connection \"main\" is mounted before (mount as=main, or mount for main)"},
		{"use other\nmount as=other", "x.fvm:1: use: no connection \"other\""},
		{"repeat 2\n  mount as=a\nend\nuse b", "x.fvm:4: use: no connection \"b\""},
		{"use Other", "x.fvm:1: use: operand 1 \"Other\" is not a valid connection name"},
		{"mount as=Other", "x.fvm:1: mount: bad name \"Other\""},
		{"backing 1M as=a:b", "x.fvm:1: backing: bad name \"a:b\""},
		{"backing 1M on=x", "x.fvm:1: backing: unknown flag \"on=x\" (want as=NAME)"},
		{"file Alt:a \"a\"", "x.fvm:1: file: operand 1 \"Alt:a\" is not a valid backing path (PATH or NAME:PATH)"},
		{"backing 1M as=alt\nfile alt:/a \"a\"", "x.fvm:2: file: operand 1 \"alt:/a\" is not a valid backing path"},
		{"mount\nrestart as=other", "x.fvm:2: restart: restart takes no as=NAME"},
		// Values compared with are $VAR or numbers.
		{"backing-ino a.txt is=x", "x.fvm:1: backing-ino: is=x: want $VAR or a number"},
		{"backing-ino a.txt ls=$x", "x.fvm:1: backing-ino: unknown flag \"ls=$x\""},
		{"kernel-memory", "x.fvm:1: kernel-memory: want one flag: as=VAR or at-most=$VAR+SIZE"},
		// Fault injection, stored outcomes, alternatives and if blocks.
		{"mount\nioctl close-all fail-nth=0", "x.fvm:2: ioctl: fail-nth=0: want a positive number or $VAR"},
		{"mount\nioctl close-all fail-nth=many", "x.fvm:2: ioctl: fail-nth=many: want a positive number or $VAR"},
		{"mount\nioctl close-all result=R", "x.fvm:2: ioctl: result=R: want a variable name"},
		{"crash => ok|maybe", "x.fvm:1: bad outcome \"ok|maybe\""},
		{"crash => ok|", "x.fvm:1: bad outcome \"ok|\""},
		{"if $r\ncrash\nend", "x.fvm:1: if: want 2 operand(s), got 1"},
		{"if r ok\ncrash\nend", "x.fvm:1: if: operand 1 \"r\" is not a valid quoted string or $var"},
		{"repeat 2 as=I\ncrash\nend", "x.fvm:1: repeat: unknown flag \"as=I\" (want as=VAR)"},
		{"repeat 2 as=i as=j\ncrash\nend", "x.fvm:1: repeat: want at most one flag, as=VAR"},
		{"repeat 2 times=3\ncrash\nend", "x.fvm:1: repeat: unknown flag \"times=3\""},
		{"kernel-memory at-most=$m", "x.fvm:1: kernel-memory: unknown flag \"at-most=$m\""},
		{"kernel-memory at-most=$m+lots", "x.fvm:1: kernel-memory: unknown flag \"at-most=$m+lots\""},
		{"kernel-memory as=m is=1", "x.fvm:1: kernel-memory: want one flag"},
		{"ioctl backing-open a.txt not=-1", "x.fvm:1: ioctl: not=-1: want $VAR or a number"},
	}
	for _, c := range cases {
		_, err := Parse("x", "x.fvm", c.text)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.text, err, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"4096": 4096, "16K": 16 << 10, "2M": 2 << 20, "1G": 1 << 30} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
}

// TestParseNames checks the steps that name connections and backing
// filesystems once those are declared, and the operands they give.
func TestParseNames(t *testing.T) {
	s, err := Parse("names", "names.fvm", `backing 16M
backing 1M as=alt
file a.txt "a"
file alt:b.txt "b"
link-backing a.txt alt:c.txt
backing-ino alt:b.txt as=ino
backing-ino a.txt is=$ino not=3
free-space on=alt as=free
mount no-probe
repeat 2
  mount as=other
  umount
end
use other
use main
ioctl backing-open alt:b.txt as=id is=1
umount-backing alt
umount-backing
`)
	if err != nil {
		t.Fatal(err)
	}
	if link := s.Steps[4]; link.Op != "link-backing" || strings.Join(link.Args, " ") != "a.txt alt:c.txt" {
		t.Errorf("link-backing step: %+v", link)
	}
	for p, want := range map[string][2]string{"a.txt": {"", "a.txt"}, "alt:b/c.txt": {"alt", "b/c.txt"}} {
		if name, rel := SplitBackingPath(p); name != want[0] || rel != want[1] {
			t.Errorf("SplitBackingPath(%q) = %q, %q, want %q", p, name, rel, want)
		}
	}
}

// TestScopeParse parses a script line by line, as the guest shell's step
// sessions do: each line may name what the lines before declared, and a
// line that fails declares nothing.
func TestScopeParse(t *testing.T) {
	sc := NewScope()
	for _, c := range []struct{ line, err string }{
		{"use other", `no connection "other"`},
		{"mount as=other", ""},
		{"use other", ""},
		{"mount as=third => frob", "bad outcome"}, // declares nothing
		{"use third", `no connection "third"`},
		{"backing 1M as=alt => frob", "bad outcome"},
		{"file alt:a \"a\"", `no backing filesystem "alt"`},
		{"backing 1M as=alt", ""},
		{"file alt:a \"a\"", ""},
	} {
		_, err := sc.Parse("step", "step", c.line)
		if (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%q: %v, want %q", c.line, err, c.err)
		}
	}
}

// TestAccepts: a step meets any, its one outcome, or one of its
// alternatives, and nothing else.
func TestAccepts(t *testing.T) {
	cases := []struct {
		want, got string
		ok        bool
	}{
		{"any", "EIO", true},
		{"ok", "ok", true},
		{"ok", "ENOMEM", false},
		{"ok|ENOMEM", "ENOMEM", true},
		{"ok|ENOMEM", "ok", true},
		{"ok|ENOMEM", "EINVAL", false},
		{"ok|ENOMEM", "ok|ENOMEM", false},
		{"EIO", "error", false},
	}
	for _, c := range cases {
		if got := Accepts(c.want, c.got); got != c.ok {
			t.Errorf("Accepts(%q, %q) = %v, want %v", c.want, c.got, got, c.ok)
		}
	}
}
