package mutate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Name is a mutant's name in reports and on the command line, from its
// number i (1-based) among n: "m07" among 60. Numbers are those of
// Generate with every operator, so a mutant keeps its name whatever Pick
// selects.
func Name(i, n int) string {
	return fmt.Sprintf("m%0*d", len(fmt.Sprint(n)), i)
}

// Number resolves a mutant given as its number ("12"), its name ("m12")
// or its ID among all, to its number (1-based).
func Number(all []Mutant, ref string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(ref, "m"))
	if err != nil {
		n = slices.IndexFunc(all, func(m Mutant) bool { return m.ID == ref }) + 1
	}
	if n < 1 || n > len(all) {
		return 0, fmt.Errorf("no such mutant (there are %d; --list shows them)", len(all))
	}
	return n, nil
}

// Pick selects from all (Generate with every operator) the mutants of the
// given operators and numbers (either empty: no restriction), with their
// names.
func Pick(all []Mutant, operators []string, numbers []int) ([]Mutant, []string, error) {
	for _, op := range operators {
		if !slices.Contains(Operators, op) {
			return nil, nil, fmt.Errorf("unknown operator %q (want %s)", op, strings.Join(Operators, ", "))
		}
	}
	var ms []Mutant
	var names []string
	for i, m := range all {
		if len(numbers) > 0 && !slices.Contains(numbers, i+1) || len(operators) > 0 && !slices.Contains(operators, m.Operator) {
			continue
		}
		ms = append(ms, m)
		names = append(names, Name(i+1, len(all)))
	}
	return ms, names, nil
}
