package splat

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"

	"fusevm/internal/lazyre"
)

// Decode resolves the stack of a report's text to file:line with the
// kernel's unstripped vmlinux, as the kernel's
// scripts/decode_stacktrace.sh does: each reliable frame ("func+0xoff/0xsize"
// or a raw address), the RIP first, becomes one line "frame file:line",
// followed by an indented line per function inlined there. Return
// addresses are looked up one byte back, at the call. It needs addr2line
// (binutils) on the host.
func Decode(vmlinux, text string) (string, error) {
	frames := stackFrames(text)
	if len(frames) == 0 {
		return "", errors.New("no stack frames in the report")
	}
	syms, err := symbolTable(vmlinux)
	if err != nil {
		return "", err
	}
	var addrs []string
	var kept []stackFrame
	for _, f := range frames {
		pc, ok := f.pc(syms)
		if !ok {
			continue
		}
		if !f.rip {
			pc--
		}
		addrs = append(addrs, fmt.Sprintf("%#x", pc))
		kept = append(kept, f)
	}
	if len(addrs) == 0 {
		return "", errors.New("no frame names a symbol of vmlinux")
	}
	cmd := exec.Command("addr2line", append([]string{"-e", vmlinux, "-a", "-f", "-i"}, addrs...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("addr2line: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	locs := parseAddr2line(out)
	if len(locs) != len(kept) {
		return "", fmt.Errorf("addr2line answered %d of %d addresses", len(locs), len(kept))
	}
	var b strings.Builder
	for i, f := range kept {
		loc := locs[i]
		// addr2line lists the innermost inlined function first and the
		// frame's own function last.
		own := loc[len(loc)-1]
		if f.fn == "" {
			// A raw address: name its function, as KALLSYMS would have.
			fmt.Fprintf(&b, "%s %s %s\n", own.fn, f.text, own.where)
		} else {
			fmt.Fprintf(&b, "%s %s\n", f.text, own.where)
		}
		for k := len(loc) - 2; k >= 0; k-- {
			fmt.Fprintf(&b, "    inlined %s %s\n", loc[k].fn, loc[k].where)
		}
	}
	return b.String(), nil
}

// stackFrame is one frame of a report: a symbol and offset, or an address.
type stackFrame struct {
	text      string // as printed, without "? "
	fn        string
	off, size uint64
	addr      uint64 // raw address frames
	rip       bool
}

// pc returns the frame's address in vmlinux.
func (f stackFrame) pc(syms map[string][]elf.Symbol) (uint64, bool) {
	if f.fn == "" {
		return f.addr, f.addr != 0
	}
	cands := syms[f.fn]
	for _, s := range cands {
		if s.Size == f.size {
			return s.Value + f.off, true
		}
	}
	if len(cands) == 1 {
		return cands[0].Value + f.off, true
	}
	return 0, false
}

var (
	symFrameRe = lazyre.New(`^(?:RIP: \w+:|\s*)(?:\[<[0-9a-f]+>\] )?([A-Za-z_][\w.]*)\+0x([0-9a-f]+)/0x([0-9a-f]+)`)
	rawFrameRe = lazyre.New(`^(?:RIP: \w+:|\s*)(?:\? )?(0xffffffff[0-9a-f]{8})\b`)
)

// stackFrames reads the RIP and the reliable call-trace frames of a report
// (frames marked "?" are guesses of the unwinder and are left out, except
// raw addresses, which kernels without KALLSYMS print with "?" always).
func stackFrames(text string) []stackFrame {
	var out []stackFrame
	seen := map[string]bool{}
	for _, raw := range strings.Split(text, "\n") {
		msg := raw
		if loc := printkPrefix().FindStringIndex(raw); loc != nil {
			msg = raw[loc[1]:]
		}
		rip := strings.HasPrefix(msg, "RIP: ")
		if !rip && strings.HasPrefix(strings.TrimSpace(msg), "? ") && !rawFrameRe().MatchString(msg) {
			continue
		}
		var f stackFrame
		if m := symFrameRe().FindStringSubmatch(msg); m != nil {
			off, _ := strconv.ParseUint(m[2], 16, 64)
			size, _ := strconv.ParseUint(m[3], 16, 64)
			f = stackFrame{text: fmt.Sprintf("%s+0x%s/0x%s", m[1], m[2], m[3]), fn: m[1], off: off, size: size}
		} else if m := rawFrameRe().FindStringSubmatch(msg); m != nil {
			addr, _ := strconv.ParseUint(m[1][2:], 16, 64)
			f = stackFrame{text: m[1], addr: addr}
		} else {
			continue
		}
		f.rip = rip
		key := fmt.Sprint(rip, f.text)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, f)
	}
	return out
}

// location is one function of addr2line's answer and where it is.
type location struct{ fn, where string }

// parseAddr2line splits "addr2line -a -f -i" output into one list of
// locations per address.
func parseAddr2line(out []byte) [][]location {
	var res [][]location
	sc := bufio.NewScanner(bytes.NewReader(out))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "0x") {
			res = append(res, nil)
			continue
		}
		if len(res) == 0 || i+1 >= len(lines) {
			break
		}
		res[len(res)-1] = append(res[len(res)-1], location{fn: lines[i], where: sourcePath(lines[i+1])})
		i++
	}
	return res
}

// sourcePath shortens addr2line's absolute paths to the part inside the
// kernel tree and drops its "(discriminator N)" notes.
func sourcePath(where string) string {
	if i := strings.Index(where, " ("); i > 0 {
		where = where[:i]
	}
	for _, top := range kernelTops {
		if i := strings.LastIndex(where, "/"+top+"/"); i >= 0 {
			return where[i+1:]
		}
	}
	return where
}

// kernelTops are the top-level directories of a kernel tree.
var kernelTops = []string{"arch", "block", "crypto", "drivers", "fs", "include", "init", "io_uring", "ipc", "kernel", "lib", "mm", "net", "rust", "security", "sound", "virt"}

var (
	symMu    sync.Mutex
	symCache = map[string]map[string][]elf.Symbol{}
)

// symbolTable reads the function symbols of vmlinux, once per path.
func symbolTable(vmlinux string) (map[string][]elf.Symbol, error) {
	symMu.Lock()
	defer symMu.Unlock()
	if t, ok := symCache[vmlinux]; ok {
		return t, nil
	}
	f, err := elf.Open(vmlinux)
	if err != nil {
		return nil, fmt.Errorf("vmlinux: %w", err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("vmlinux %s: %w", vmlinux, err)
	}
	t := map[string][]elf.Symbol{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			t[s.Name] = append(t[s.Name], s)
		}
	}
	symCache[vmlinux] = t
	return t, nil
}
