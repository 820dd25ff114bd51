// Command fusetestd is the test FUSE daemon of fusevm: a crash-recoverable
// passthrough server and its /dev/fuse keeper. Run `fusetestd help` for the
// commands; package fusevm/fusetestd documents the contract. The fusevm
// binary carries the same command (it runs it when started under the name
// fusetestd, as in the guest); this one is the daemon on its own, for the
// host tests and for use outside fusevm.
package main

import (
	"os"

	"fusevm/fusetestd"
)

func main() {
	os.Exit(fusetestd.Main(os.Args[1:]))
}
