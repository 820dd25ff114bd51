package ctl

import (
	"net"
	"os"
	"syscall"
	"testing"
)

func TestLineConnCarriesFDs(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *LineConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return NewLineConn(c.(*net.UnixConn))
	}
	a, b := conn(fds[0]), conn(fds[1])
	defer a.Close()
	defer b.Close()

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	sent := Response{OK: true, Errno: "ENOENT", Handover: &Handover{Generation: 3, Init: []byte{1, 2, 0, 255}}}
	if err := a.Send(sent, int(w.Fd())); err != nil {
		t.Fatal(err)
	}
	if err := a.Send(Request{Op: OpStatus}); err != nil {
		t.Fatal(err)
	}
	var got Response
	gotFDs, err := b.Receive(&got)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotFDs) != 1 || got.Errno != "ENOENT" || got.Handover == nil || string(got.Handover.Init) != string(sent.Handover.Init) {
		t.Fatalf("received %+v with fds %v", got, gotFDs)
	}
	passed := os.NewFile(uintptr(gotFDs[0]), "passed")
	defer passed.Close()
	if _, err := passed.Write([]byte("x")); err != nil {
		t.Fatalf("write to the passed pipe end: %v", err)
	}
	buf := make([]byte, 1)
	if _, err := r.Read(buf); err != nil || buf[0] != 'x' {
		t.Fatalf("read %q, %v", buf, err)
	}
	var req Request
	if fds, err := b.Receive(&req); err != nil || len(fds) != 0 || req.Op != OpStatus {
		t.Fatalf("second message: %+v %v %v", req, fds, err)
	}
}
