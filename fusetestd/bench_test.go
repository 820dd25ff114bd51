package fusetestd_test

import (
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkLookupOpenRelease measures request throughput through the
// daemon: with a zero TTL every open(2) of the mount costs LOOKUP, OPEN
// (with BACKING_OPEN) and, at close, FLUSH and RELEASE (with BACKING_CLOSE).
func BenchmarkLookupOpenRelease(b *testing.B) {
	e := newEnv(b, map[string]string{"a.txt": content})
	e.serve()
	p := e.path("a.txt")
	b.ResetTimer()
	for range b.N {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		unix.Close(fd)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "opens/s")
	if st := e.status(); st.Served["LOOKUP"] < uint64(b.N) || st.Served["OPEN"] < uint64(b.N) {
		b.Fatalf("fewer LOOKUPs or OPENs than opens: %v", st.Served)
	}
}

// BenchmarkLookupOpenReleaseParallel is the same from several goroutines.
func BenchmarkLookupOpenReleaseParallel(b *testing.B) {
	e := newEnv(b, map[string]string{"a.txt": content})
	e.serve()
	p := e.path("a.txt")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				b.Error(err)
				return
			}
			unix.Close(fd)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "opens/s")
}

// BenchmarkRestartCold measures the time from SIGKILL of the serving
// generation to its successor serving, the successor being started right
// after the kill (process start included). Run with -benchtime=20x for the
// median of 20.
func BenchmarkRestartCold(b *testing.B) {
	benchRestart(b, false)
}

// BenchmarkRestartStandby is the same with the successor started before the
// kill, waiting with --standby.
func BenchmarkRestartStandby(b *testing.B) {
	benchRestart(b, true)
}

func benchRestart(b *testing.B, standby bool) {
	e := newEnv(b, map[string]string{"a.txt": content})
	gen := e.serve()
	var took []time.Duration
	b.ResetTimer()
	for range b.N {
		var next *proc
		if standby {
			next = e.startServe(false, "--standby")
			next.waitLine(b, "standby")
		}
		t0 := time.Now()
		gen.cmd.Process.Signal(unix.SIGKILL)
		if !standby {
			next = e.startServe(false)
		}
		next.waitLine(b, "serving")
		took = append(took, time.Since(t0))
		<-gen.done
		gen = next
	}
	b.StopTimer()
	fd, err := e.open("a.txt", unix.O_RDONLY)
	if err != nil {
		b.Fatal(err)
	}
	e.expectContent(fd, content)
	e.close(fd)
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "ms-median")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "ms-max")
}
