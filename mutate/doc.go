// Package mutate is the mutation-analysis stage of a patch series: it
// measures how much a scenario suite checks of the C code a series adds.
//
// Generate makes mutants, small wrong versions of the lines the series adds
// to .c files (a dropped capability check, lock or reference, a negated
// condition, a swapped operator, another return value, a deleted
// statement), each as a git-format patch that applies on top of the whole
// series. The harness builds and runs each one; Classify turns a mutant's
// kernel record and cells into an Outcome (killed when a cell's verdict
// became unexpected), LoadEquivalents reads the mutants.toml that lists the
// mutants no scenario can kill, and Summarize, WriteMarkdown and WriteText
// render the result.
//
// Mutants are found on the text of the patches alone: no kernel tree is
// needed. Each patch's hunks are read as a window on the file (their context
// and added lines), and a sparse model of every touched file (the lines the
// series' hunks show, at their numbers after each patch) places each mutant
// in the file as the whole series leaves it. The analysis is lexical and
// deliberately simple: comments, string literals and preprocessor lines are
// masked out, statements end at a ';' outside parentheses, and functions
// are recognised by a header line at column 0 and closed by a '}' there.
//
// This package imports only kernel and report (with verdict); it builds no
// kernel and boots no VM.
package mutate
