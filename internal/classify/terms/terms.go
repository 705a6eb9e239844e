// Package terms is the content detector a platform team configures without
// code: named lists of terms and patterns (classify.terms), counted in a
// request's text so that Rego can read input.classification.terms.<name>.count.
//
// The text is folded once (see Fold); every term of every list is then
// found in one pass over it by an Aho–Corasick automaton compiled to a
// dense table over byte classes: one table lookup per byte, whatever the
// number of terms. A
// term matches whole words only: "zephyr" is not found in "zephyrs". Each
// pattern (RE2 syntax, linear time) is one more pass over the same folded
// text, so it is written in lower case; terms are the cheap way and
// patterns are for what terms cannot say (ticket numbers, code names with
// digits). A pattern with a literal prefix ("zph-\d{4}") is found by a
// substring search first and costs little more than a term.
package terms

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
)

// List is one named detector.
type List struct {
	Name     string
	Terms    []string
	Patterns []string
}

// Limits keep a config from building an automaton too large to hold.
const (
	MaxTermBytes  = 256     // one folded term
	MaxTotalBytes = 1 << 20 // all folded terms together
)

// Matcher counts the lists' terms and patterns in texts. It is immutable
// and safe for concurrent use.
type Matcher struct {
	names   []string
	classes [256]uint16 // byte -> column; 0 for bytes no term contains
	ncols   int
	// next is the full DFA: next[row + column] is the next state's row
	// (state*ncols). States are numbered so that those ending a term come
	// last, from row outRow on: a step is one load and one add, and the
	// outputs are looked up only where there are some.
	next     []int32
	outRow   int32
	maxLen   int     // the longest folded term
	outStart []int32 // state -> first index in outs; state+1 -> end
	outs     []output
	patterns []pattern
	bufs     sync.Pool
}

// output is a term ending at a state: its list, length in folded bytes,
// and whether its first and last runes are letters or digits (only then
// must the text have a word boundary there).
type output struct {
	list       int32
	length     int32
	wordStart  bool
	wordFinish bool
}

type pattern struct {
	list int
	re   *regexp.Regexp
}

// New compiles the lists; every problem is reported, each naming the
// list. A nil Matcher (no lists) counts nothing.
func New(lists []List) (*Matcher, error) {
	if len(lists) == 0 {
		return nil, nil
	}
	m := &Matcher{}
	var errs []error
	bad := func(i int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("classify.terms[%d] (%s): %s", i, lists[i].Name, fmt.Sprintf(format, args...)))
	}
	type term struct {
		text string
		list int
	}
	var all []term
	seen := map[string]bool{}
	total := 0
	for i, l := range lists {
		if !validName(l.Name) {
			bad(i, "name must be lower-case letters, digits and _, starting with a letter")
		}
		if seen[l.Name] {
			bad(i, "name is used twice")
		}
		seen[l.Name] = true
		if len(l.Terms) == 0 && len(l.Patterns) == 0 {
			bad(i, "needs terms or patterns")
		}
		dup := map[string]bool{}
		for _, t := range l.Terms {
			f := strings.TrimSpace(Fold(t))
			switch {
			case f == "":
				bad(i, "term %q is empty once folded", t)
				continue
			case len(f) > MaxTermBytes:
				bad(i, "term %q is longer than %d bytes", t, MaxTermBytes)
				continue
			case dup[f]:
				continue // "Zephyr" and "zephyr" are one term
			}
			dup[f] = true
			total += len(f)
			m.maxLen = max(m.maxLen, len(f))
			all = append(all, term{f, i})
		}
		for _, p := range l.Patterns {
			re, err := regexp.Compile(p)
			if err != nil {
				bad(i, "pattern %q: %v", p, err)
				continue
			}
			if re.MatchString("") {
				bad(i, "pattern %q matches the empty text", p)
				continue
			}
			if lit, ok := unfoldedLiteral(p); ok {
				bad(i, "pattern %q: %q never appears in the text it matches, which is folded (lower case, no accents, one space for white space); write %q",
					p, lit, Fold(lit))
				continue
			}
			m.patterns = append(m.patterns, pattern{list: i, re: re})
		}
		m.names = append(m.names, l.Name)
	}
	if total > MaxTotalBytes {
		errs = append(errs, fmt.Errorf("classify.terms: %d bytes of terms, more than %d", total, MaxTotalBytes))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	// Columns: one per byte value some term contains, 0 for the rest.
	m.ncols = 1
	for _, t := range all {
		for j := 0; j < len(t.text); j++ {
			if m.classes[t.text[j]] == 0 {
				m.classes[t.text[j]] = uint16(m.ncols)
				m.ncols++
			}
		}
	}
	// The trie, as the goto table with -1 for "no edge".
	gotoT := []int32{}
	newState := func() int32 {
		for range m.ncols {
			gotoT = append(gotoT, -1)
		}
		return int32(len(gotoT)/m.ncols - 1)
	}
	newState()
	own := map[int32][]output{}
	for _, t := range all {
		s := int32(0)
		for j := 0; j < len(t.text); j++ {
			c := int32(m.classes[t.text[j]])
			if gotoT[s*int32(m.ncols)+c] < 0 {
				n := newState()
				gotoT[s*int32(m.ncols)+c] = n
			}
			s = gotoT[s*int32(m.ncols)+c]
		}
		own[s] = append(own[s], output{list: int32(t.list), length: int32(len(t.text)),
			wordStart: isWordAt([]byte(t.text), false), wordFinish: isWordAt([]byte(t.text), true)})
	}
	// Breadth first: failure links, the full transition table and each
	// state's outputs (its own, then its failure state's).
	n := len(gotoT) / m.ncols
	m.next = gotoT // completed in place: -1 edges become failure transitions
	fail := make([]int32, n)
	outs := make([][]output, n)
	outs[0] = own[0]
	queue := make([]int32, 0, n)
	for c := 0; c < m.ncols; c++ {
		if t := m.next[c]; t > 0 {
			fail[t] = 0
			queue = append(queue, t)
		} else {
			m.next[c] = 0
		}
	}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		outs[s] = append(own[s], outs[fail[s]]...)
		for c := 0; c < m.ncols; c++ {
			i := int(s)*m.ncols + c
			if t := m.next[i]; t >= 0 {
				fail[t] = m.next[int(fail[s])*m.ncols+c]
				queue = append(queue, t)
			} else {
				m.next[i] = m.next[int(fail[s])*m.ncols+c]
			}
		}
	}
	// Renumber: states without outputs first (the root stays 0).
	order := make([]int32, 0, n) // new -> old
	for s := range n {
		if len(outs[s]) == 0 {
			order = append(order, int32(s))
		}
	}
	m.outRow = int32(len(order) * m.ncols)
	for s := range n {
		if len(outs[s]) > 0 {
			order = append(order, int32(s))
		}
	}
	renum := make([]int32, n) // old -> new
	for nw, old := range order {
		renum[old] = int32(nw)
	}
	table := make([]int32, len(m.next))
	m.outStart = make([]int32, n+1)
	for nw, old := range order {
		for c := 0; c < m.ncols; c++ {
			table[nw*m.ncols+c] = renum[m.next[int(old)*m.ncols+c]] * int32(m.ncols)
		}
		m.outStart[nw] = int32(len(m.outs))
		m.outs = append(m.outs, outs[old]...)
	}
	m.outStart[n] = int32(len(m.outs))
	m.next = table
	return m, nil
}

func validName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// Names are the lists' names, in config order: the index of Count's counts.
func (m *Matcher) Names() []string {
	if m == nil {
		return nil
	}
	return m.names
}

// unfoldedLiteral returns a literal of pattern p that folding changes
// ("ZPH", "café", "\t"): p can never match where it must.
func unfoldedLiteral(p string) (string, bool) {
	re, err := syntax.Parse(p, syntax.Perl)
	if err != nil {
		return "", false // regexp.Compile has said so
	}
	var walk func(re *syntax.Regexp) (string, bool)
	walk = func(re *syntax.Regexp) (string, bool) {
		if re.Op == syntax.OpLiteral {
			lit := string(re.Rune)
			if re.Flags&syntax.FoldCase != 0 {
				lit = strings.ToLower(lit) // (?i): either case is matched
			}
			for _, r := range lit {
				if c := string(r); Fold(c) != c {
					return string(re.Rune), true
				}
			}
		}
		for _, sub := range re.Sub {
			if lit, ok := walk(sub); ok {
				return lit, true
			}
		}
		return "", false
	}
	return walk(re)
}

// Count adds to counts[i] the occurrences of list i's terms and patterns
// in text. counts must have len(Names()) elements.
func (m *Matcher) Count(text string, counts []int) {
	if m == nil || text == "" {
		return
	}
	bp, _ := m.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 4096)
		bp = &b
	}
	buf := appendFold((*bp)[:0], text)
	m.count(buf, counts)
	for _, p := range m.patterns {
		counts[p.list] += len(p.re.FindAllIndex(buf, -1))
	}
	*bp = buf
	m.bufs.Put(bp)
}

// count runs the automaton over folded text. A DFA step waits for the one
// before it (a load whose address is the last load's result), so one chain
// over the text runs at the memory latency, not at the speed of the CPU.
// Texts of some length are cut in two halves scanned by two interleaved
// chains: the second starts maxLen-1 bytes before the middle, from the
// root, so that it sees every term ending in its half whole, and counts
// only those; the first counts the terms ending in its own half.
func (m *Matcher) count(buf []byte, counts []int) {
	n := len(buf)
	if n < 4*m.maxLen+64 {
		row := int32(0)
		for i := 0; i < n; i++ {
			row = m.next[row+int32(m.classes[buf[i]])]
			if row >= m.outRow {
				m.hit(buf, i+1, row, counts)
			}
		}
		return
	}
	next, classes, outRow := m.next, &m.classes, m.outRow
	mid := n / 2
	rb := int32(0)
	for i := mid - m.maxLen + 1; i < mid; i++ { // the second chain's run-up: no term ends in its half yet
		rb = next[rb+int32(classes[buf[i]])]
	}
	ra := int32(0)
	a, b := buf[:mid], buf[mid:]
	for k := range a {
		ra = next[ra+int32(classes[a[k]])]
		rb = next[rb+int32(classes[b[k]])]
		if ra >= outRow {
			m.hit(buf, k+1, ra, counts)
		}
		if rb >= outRow {
			m.hit(buf, mid+k+1, rb, counts)
		}
	}
	for k := len(a); k < len(b); k++ {
		rb = next[rb+int32(classes[b[k]])]
		if rb >= outRow {
			m.hit(buf, mid+k+1, rb, counts)
		}
	}
}

// hit counts the terms that end at buf[:end] in the state at row and have
// a word border on each side that needs one.
func (m *Matcher) hit(buf []byte, end int, row int32, counts []int) {
	s := row / int32(m.ncols)
	for _, o := range m.outs[m.outStart[s]:m.outStart[s+1]] {
		if o.wordStart && isWordAt(buf[:end-int(o.length)], true) {
			continue
		}
		if o.wordFinish && isWordAt(buf[end:], false) {
			continue
		}
		counts[o.list]++
	}
}
