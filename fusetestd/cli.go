package fusetestd

// The command line of fusetestd: Main parses it into a KeeperConfig or a
// ServeConfig, or talks to the sockets through package ctl.

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"

	"fusevm/fuseabi"
	"fusevm/fusetestd/ctl"
)

// Usage is the help text of the fusetestd command line.
const Usage = `fusetestd: a crash-recoverable FUSE passthrough daemon and its fd keeper.

Usage:
  fusetestd keeper --mount MNT --state STATEDIR [--no-passthrough]
                   [--options OPTS] [--subtype NAME]
      Opens /dev/fuse, mounts MNT (fstype fuse.NAME), reads the FUSE_INIT
      request, and holds both for the connection's whole life, handing them
      to each daemon generation over STATEDIR/keeper.sock. Prints
      "keeper ready conn=N pid=P" on stdout once it serves. Never opens a
      file on the mount. SIGTERM, SIGINT or "fusetestd umount" unmount and
      end the connection. --no-passthrough: INIT is answered without
      FUSE_PASSTHROUGH. --options: extra mount options, comma-separated
      (allow_other, default_permissions, ...).

  fusetestd serve --state STATEDIR --backing DIR [--recovery STRATEGY]
                  [--id-per-open] [--inode-cache] [--inode-cache-bit N]
                  [--no-passthrough] [--no-probe] [--readers N]
                  [--ttl DURATION] [--standby] [--init-fail-nth N] [--debug]
      One daemon generation: takes the connection from the keeper, replays
      the saved INIT (the first generation answers it), applies the recovery
      strategy, sends FUSE_NOTIFY_RESEND if an earlier generation existed,
      then serves DIR at the mount with nodeid = backing inode number and
      serves its control socket STATEDIR/daemon.sock. Prints
      "serving generation=G pid=P" on stdout once it serves. Exits 0 when
      the connection ends or on SIGTERM/SIGINT; SIGKILL is the crash.
      --recovery none|close-all|close-minus-one|scan-close|adopt (none)
      --id-per-open       a fresh backing id for every OPEN (default: one per
                          inode, refcounted over its handles)
      --inode-cache       set FOPEN_PASSTHROUGH_INODE_CACHE on passthrough
                          opens, at bit --inode-cache-bit (8, as v1); kernels
                          without v1 refuse every such open (EIO)
      --no-passthrough    answer opens without passthrough, serve READ/WRITE
      --no-probe          register no probe backing file at start: learn
                          passthrough from the INIT reply alone and take no
                          id (the first id registered on a fresh connection
                          is 1); scan-close then reports ENOTSUP
      --readers N         goroutines reading /dev/fuse (4)
      --ttl DURATION      entry and attribute timeout (0: every path walk
                          sends LOOKUP)
      --standby           print "standby pid=P", then wait for the generation
                          holding the connection to end and take over; start
                          successors this way before a crash: a process that
                          holds files open on the mount must not fork+exec
                          while no daemon serves (the exec's close of those
                          files sends FLUSH, which nobody answers)
      --init-fail-nth N   the generation that answers INIT makes the Nth
                          slab allocation of that write fail (kernel fault
                          injection: CONFIG_FAULT_INJECTION, CONFIG_FAILSLAB,
                          CONFIG_FAULT_INJECTION_DEBUG_FS) and logs whether
                          the kernel got that far; refused by a later
                          generation
      --debug             log every request and reply on stderr

  fusetestd status --state STATEDIR
      Prints {"keeper": KEEPER-STATUS, "daemon": DAEMON-STATUS} as JSON (null
      for a part that does not answer); fails only if neither answers.

  fusetestd umount --state STATEDIR
      Unmounts and ends the connection through the keeper; with no keeper,
      aborts the connection through fusectl and detaches the mount.

Control socket STATEDIR/daemon.sock (the serving generation): JSON lines,
one request object per line, one answer per line, {"ok":true,...} or
{"ok":false,"error":"..."}; kernel refusals come as "errno":"ENOENT" with ok
true. Go client: package fusevm/fusetestd/ctl.
  {"op":"status"}                   generation, pid, serving, passthrough,
                                    plain_io, backing_ids, recovery {strategy,
                                    errno, detail, closed, adopted},
                                    resend_errno, served/held by opcode, ...
  {"op":"next-open-id","path":"a.txt","id":7}
                                    the next OPEN of the path answers
                                    FOPEN_PASSTHROUGH with that backing id
  {"op":"hold","opcode":"LOOKUP"}   read such requests, answer none of them
  {"op":"release-held","opcode":"LOOKUP"}
                                    stop holding (every opcode without one)
                                    and answer what was held; "count"
  {"op":"backing-open","path":"a.txt"}
                                    register the backing file; "id" or "errno"
  {"op":"backing-close","id":7}     BACKING_CLOSE on the daemon's fd; "errno"
Keeper socket STATEDIR/keeper.sock: {"op":"status"}, {"op":"dev-fd"} (a
duplicate of the /dev/fuse fd by SCM_RIGHTS), {"op":"umount"}, and the
takeover protocol of the daemon generations.

Exit status: 0 success, 1 failure (one line on stderr says why), 2 usage.
`

// Main runs the fusetestd command line (see Usage) with args, the
// arguments after the program name, and returns its exit status: 0
// success, 1 failure, 2 usage. Command fusetestd is Main; so is the fusevm
// binary when it is started under the name fusetestd, as the guest's
// /bin/fusetestd.
func Main(args []string) int {
	log.SetFlags(log.Lmicroseconds)
	if len(args) < 1 {
		fmt.Fprint(os.Stderr, Usage)
		return 2
	}
	var err error
	switch cmd, args := args[0], args[1:]; cmd {
	case "keeper":
		err = cmdKeeper(args)
	case "serve":
		err = cmdServe(args)
	case "status":
		err = cmdStatus(args)
	case "umount":
		err = cmdUmount(args)
	case "help", "-h", "--help":
		fmt.Print(Usage)
		return 0
	default:
		fmt.Fprintf(os.Stderr, "fusetestd: unknown command %q\n\n%s", cmd, Usage)
		return 2
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "fusetestd: %v\n", err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "fusetestd: %v\n", err)
		return 1
	}
}

// usageError marks a mistake in the command line.
type usageError struct{ error }

// parse parses args for the command name, requiring the named flags.
func parse(fs *flag.FlagSet, args []string, required ...string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return usageError{fmt.Errorf("%s: %w", fs.Name(), err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	for _, name := range required {
		if fs.Lookup(name).Value.String() == "" {
			return usageError{fmt.Errorf("%s: --%s is required", fs.Name(), name)}
		}
	}
	return nil
}

// cmdKeeper is "fusetestd keeper".
func cmdKeeper(args []string) error {
	fs := flag.NewFlagSet("keeper", flag.ContinueOnError)
	var cfg KeeperConfig
	fs.StringVar(&cfg.Mountpoint, "mount", "", "")
	fs.StringVar(&cfg.State, "state", "", "")
	fs.BoolVar(&cfg.NoPassthrough, "no-passthrough", false, "")
	fs.StringVar(&cfg.Options, "options", "", "")
	fs.StringVar(&cfg.Subtype, "subtype", "fusetestd", "")
	if err := parse(fs, args, "mount", "state"); err != nil {
		return err
	}
	cfg.Ready = os.Stdout
	cfg.Log = log.New(os.Stderr, "fusetestd keeper: ", log.Lmicroseconds)
	return RunKeeper(cfg)
}

// cmdServe is "fusetestd serve".
func cmdServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var cfg ServeConfig
	var inodeCache bool
	var bit uint
	fs.StringVar(&cfg.State, "state", "", "")
	fs.StringVar(&cfg.Backing, "backing", "", "")
	fs.StringVar(&cfg.Recovery, "recovery", RecoveryNone, "")
	fs.BoolVar(&cfg.IDPerOpen, "id-per-open", false, "")
	fs.BoolVar(&inodeCache, "inode-cache", false, "")
	fs.UintVar(&bit, "inode-cache-bit", fuseabi.InodeCacheBitV1, "")
	fs.BoolVar(&cfg.NoPassthrough, "no-passthrough", false, "")
	fs.BoolVar(&cfg.NoProbe, "no-probe", false, "")
	fs.IntVar(&cfg.Readers, "readers", 4, "")
	fs.DurationVar(&cfg.TTL, "ttl", 0, "")
	fs.BoolVar(&cfg.Debug, "debug", false, "")
	fs.BoolVar(&cfg.Standby, "standby", false, "")
	fs.IntVar(&cfg.InitFailNth, "init-fail-nth", 0, "")
	if err := parse(fs, args, "state", "backing"); err != nil {
		return err
	}
	if cfg.InitFailNth < 0 {
		return usageError{fmt.Errorf("serve: --init-fail-nth %d: want a positive number", cfg.InitFailNth)}
	}
	if bit > 31 {
		return usageError{fmt.Errorf("serve: --inode-cache-bit %d: want 0..31", bit)}
	}
	cfg.InodeCacheBit = -1
	if inodeCache {
		cfg.InodeCacheBit = int(bit)
	}
	if !slices.Contains(Recoveries, cfg.Recovery) {
		return usageError{fmt.Errorf("serve: --recovery %q: want one of %s", cfg.Recovery, strings.Join(Recoveries, ", "))}
	}
	cfg.Ready = os.Stdout
	cfg.Log = log.New(os.Stderr, "fusetestd serve: ", log.Lmicroseconds)
	return RunServe(cfg)
}

// cmdStatus is "fusetestd status".
func cmdStatus(args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	state := fs.String("state", "", "")
	if err := parse(fs, args, "state"); err != nil {
		return err
	}
	var out struct {
		Keeper *ctl.KeeperStatus `json:"keeper"`
		Daemon *ctl.Status       `json:"daemon"`
	}
	ks, kerr := ctl.KeeperStatusOf(*state)
	if kerr == nil {
		out.Keeper = &ks
	}
	var derr error
	if cl, err := ctl.Dial(*state); err != nil {
		derr = err
	} else {
		ds, err := cl.Status()
		cl.Close()
		if derr = err; err == nil {
			out.Daemon = &ds
		}
	}
	if kerr != nil && derr != nil {
		return fmt.Errorf("%v; %v", kerr, derr)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// cmdUmount is "fusetestd umount".
func cmdUmount(args []string) error {
	fs := flag.NewFlagSet("umount", flag.ContinueOnError)
	state := fs.String("state", "", "")
	if err := parse(fs, args, "state"); err != nil {
		return err
	}
	return Umount(*state)
}
