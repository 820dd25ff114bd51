# Boot settings for every kernel fusevm builds (base.config); one
# "key: value" a line, see debug.boot.
#
# race: every race block of the scenarios runs at most this long. Under the
# base config a race can only show what makes the kernel print a report on
# its own (no KASAN, no lockdep): measured detection is in BENCHMARKS.md
# ("Race lengths"). debug.boot sets its own.
race: 5s
