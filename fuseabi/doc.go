// Package fuseabi is the slice of the Linux FUSE kernel interface that fusevm
// exercises: the /dev/fuse ioctl numbers and their argument structs
// (BACKING_OPEN, BACKING_CLOSE and the close-all variants of the patch series
// under test), the request and reply headers, the opcode names, the fusectl
// connection directory, and feature probes that tell which of the series'
// interfaces the running kernel offers. It is a leaf shared by the host and
// guest programs: besides the standard library and golang.org/x/sys it
// imports only go-fuse's fuse package, whose protocol structs it encodes.
package fuseabi
