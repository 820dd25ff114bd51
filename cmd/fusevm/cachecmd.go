package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
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
		entries, err := (&kernel.Cache{Root: *dir}).Verify()
		if err != nil {
			return exitFail, err
		}
		kernel.WriteEntries(os.Stdout, entries)
		if err := kernel.Damaged(entries); err != nil {
			return exitFail, err
		}
		return exitOK, nil
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
		res, err := (&kernel.Cache{Root: *dir}).Prune(limit, *kind)
		if res != nil {
			res.WriteText(os.Stdout)
		}
		if err != nil {
			return exitFail, err
		}
		return exitOK, nil
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
