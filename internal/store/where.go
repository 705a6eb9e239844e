package store

import (
	"strconv"
	"strings"
)

// Where builds a query's WHERE clause from the conditions a caller has,
// each with its values bound ($1, $2, … in order): a condition written for
// every filter, true when its parameter is empty (($1 = ” OR col = $1)),
// keeps SQLite's planner from the filter's index, as a bound parameter may
// be empty (the data-volume probe: the audit log's and the keys' lists).
type Where struct {
	conds []string
	Args  []any // the values, in the order of their placeholders
}

// Add adds a condition; each ? in it is the next of vs, bound.
func (w *Where) Add(cond string, vs ...any) {
	for _, v := range vs {
		w.Args = append(w.Args, v)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.Args)), 1)
	}
	w.conds = append(w.conds, cond)
}

// SQL is " WHERE " and the conditions joined by AND; "" for none.
func (w *Where) SQL() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// Bind adds a value with no condition (a LIMIT's) and returns its
// placeholder.
func (w *Where) Bind(v any) string {
	w.Args = append(w.Args, v)
	return "$" + strconv.Itoa(len(w.Args))
}
