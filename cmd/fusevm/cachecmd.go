package main

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"fusevm/kernel"
	"fusevm/scenarios/script"
)

// cmdCache runs "cache verify" (list the entries, check their digests) and
// "cache prune" (remove the least recently used entries).
func cmdCache(args []string) (int, error) {
	if len(args) == 0 {
		return exitUsage, usagef("cache: want \"cache verify\" or \"cache prune\"")
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Println("usage: fusevm cache verify [--cache DIR]\n       fusevm cache prune [--cache DIR] [--max-size SIZE] [--kind K]\n\nfusevm cache SUBCOMMAND -h lists a subcommand's flags.")
		return exitOK, nil
	}
	fs := flag.NewFlagSet("cache "+args[0], flag.ContinueOnError)
	dir := fs.String("cache", kernel.DefaultCacheDir(), "cache directory")
	switch args[0] {
	case "verify":
		if err := parseNoArgs(fs, args[1:]); err != nil {
			return parseError(err)
		}
		return cacheVerify(&kernel.Cache{Root: *dir})
	case "prune":
		maxSize := fs.String("max-size", "", "remove entries until the cache (or --kind) takes at most SIZE: 4096, 500M, 20G")
		kind := fs.String("kind", "", "remove entries of this kind only: "+strings.Join(kernel.Kinds, ", "))
		if err := parseNoArgs(fs, args[1:]); err != nil {
			return parseError(err)
		}
		var limit int64
		switch {
		case *kind != "" && !slices.Contains(kernel.Kinds, *kind):
			return exitUsage, usagef("cache prune: --kind %q: want one of %s", *kind, strings.Join(kernel.Kinds, ", "))
		case *maxSize == "" && *kind == "":
			return exitUsage, usagef("cache prune: give --max-size SIZE, --kind K (all of that kind) or both")
		case *maxSize != "":
			n, err := script.ParseSize(*maxSize)
			if err != nil || n < 0 {
				return exitUsage, usagef("cache prune: --max-size %q: want bytes, or a number with K, M or G", *maxSize)
			}
			limit = n
		}
		return cachePrune(&kernel.Cache{Root: *dir}, limit, *kind)
	}
	return exitUsage, usagef("cache: unknown subcommand %q (want verify or prune)", args[0])
}

// parseNoArgs parses flags and refuses operands.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	if err := parseArgs(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%s: %v", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// cacheVerify prints every entry; it fails when one is damaged.
func cacheVerify(c *kernel.Cache) (int, error) {
	entries, err := c.Verify()
	if err != nil {
		return exitFail, err
	}
	fmt.Printf("%-10s %-40s %8s  %-16s  %s\n", "KIND", "ENTRY", "SIZE", "LAST USE", "STATUS")
	damaged := 0
	for _, e := range entries {
		status := "-"
		switch {
		case e.Damage != nil:
			status = "DAMAGED: " + e.Damage.Error()
			damaged++
		case e.Checked:
			status = "ok"
		}
		if e.Locked {
			status += " (in use)"
		}
		fmt.Printf("%-10s %-40s %8s  %-16s  %s\n", e.Kind, e.Name, humanSize(e.Size), e.Time.Format("2006-01-02 15:04"), status)
	}
	fmt.Println("size:", kindSizes(kernel.KindSizes(entries)))
	if damaged > 0 {
		return exitFail, fmt.Errorf("%d of %d cache entries damaged (kernels, prebuilt images and guest images are made again on their next use)", damaged, len(entries))
	}
	return exitOK, nil
}

// cachePrune removes entries and prints what it removed and the sizes.
func cachePrune(c *kernel.Cache, maxSize int64, kind string) (int, error) {
	res, err := c.Prune(maxSize, kind)
	if res != nil {
		fmt.Println("before:", kindSizes(res.Before))
		for _, e := range res.Removed {
			fmt.Printf("removed %-40s %8s  last used %s\n", e.Name, humanSize(e.Size), e.Time.Format("2006-01-02 15:04"))
		}
		for _, e := range res.Skipped {
			fmt.Printf("kept    %-40s %8s  in use\n", e.Name, humanSize(e.Size))
		}
		fmt.Println("after: ", kindSizes(res.After))
	}
	if err != nil {
		return exitFail, err
	}
	return exitOK, nil
}

// kindSizes renders sizes per kind, in kernel.Kinds order, and their total:
// "kernels 52.0M, src 1.8G = 1.9G".
func kindSizes(sizes map[string]int64) string {
	var parts []string
	var total int64
	for _, k := range kernel.Kinds {
		if n, ok := sizes[k]; ok {
			parts = append(parts, k+" "+humanSize(n))
			total += n
		}
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ") + " = " + humanSize(total)
}

// humanSize renders a byte count with a binary unit: 512B, 4.0K, 1.8G.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	f, unit := float64(n)/1024, 0
	for f >= 1024 && unit < 4 {
		f /= 1024
		unit++
	}
	return fmt.Sprintf("%.1f%c", f, "KMGTP"[unit])
}
