// Package vmtest boots a kernel image and an initramfs in QEMU and supervises
// the run: it chooses the accelerator (KVM only where a probe showed that KVM
// really boots on this host, TCG otherwise), copies the serial console to a
// log file and an optional stream, talks QMP to learn how the guest ended
// (SHUTDOWN with its reason, GUEST_PANICKED), carries the guest agent's JSON
// event lines over a virtio-serial port, enforces the boot, silence and
// overall timeouts, and never leaves a QEMU process behind. It knows nothing
// of kernel sources, patches or configs; the subpackage splat finds kernel
// splats in the console output it returns.
package vmtest
