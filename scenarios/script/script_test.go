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
