// Package translate holds the wire-format machinery shared by every
// provider: the SSE framer (and, as formats land, the translations between
// them).
package translate

import "bytes"

// Event is one server-sent event. Data joins multi-line data with "\n".
type Event struct {
	Name string // the "event:" field, "" for the default "message"
	Data []byte
	ID   string
	// Raw is the event's bytes as received, including its terminating
	// blank line, so an event can be forwarded unchanged.
	Raw []byte
}

// maxPending bounds an event that never ends (no blank line): beyond it the
// framer emits what it has as one event rather than growing without limit.
const maxPending = 8 << 20

// keepBuf is the largest held-back buffer kept for reuse once it is empty:
// one long event must not pin its memory for the rest of the stream.
const keepBuf = 64 << 10

// Framer splits a byte stream into SSE events, across chunk boundaries. It
// accepts LF, CRLF and CR line endings, skips comment lines (":…"), joins
// multi-line data, and returns a final event without a trailing blank line
// from Flush. Zero value ready to use; not safe for concurrent use.
//
// Framing is linear in the bytes fed: an unfinished event is scanned once,
// however many chunks it spans, and an event that arrives whole in one chunk
// is neither copied nor allocated for (its slices point into the chunk).
type Framer struct {
	// buf[start:] holds the bytes of an unfinished event; buf[:start] the
	// events returned by the last Feed, dropped at the next one.
	buf   []byte
	start int
	// scan is where, in buf[start:], the search for the event's end resumes:
	// nothing before it ends the event.
	scan int
	// name is the last event name seen, reused while the names repeat
	// (content_block_delta after content_block_delta) instead of allocated.
	name string
}

// Feed adds a chunk and returns the events it completed. The returned
// events (and their byte slices, which may point into chunk) stay valid
// until the next call, as long as chunk is not modified.
func (f *Framer) Feed(chunk []byte, dst []Event) []Event {
	if f.start > 0 { // the previous call's events are no longer needed
		n := copy(f.buf, f.buf[f.start:])
		f.buf, f.start = f.buf[:n], 0
	}
	work := chunk
	if len(f.buf) > 0 {
		if len(f.buf)+len(chunk) > cap(f.buf) { // double: a long event is copied O(1) times, not append's 1.25x steps
			f.buf = append(make([]byte, 0, 2*cap(f.buf)+len(chunk)), f.buf...)
		}
		f.buf = append(f.buf, chunk...)
		work = f.buf
	}
	le := lineEnds{b: work, cr: -1, lf: -1}
	pos, from := 0, f.scan
	for {
		end, next, resume := le.eventEnd(from)
		if end < 0 {
			f.scan = resume - pos
			break
		}
		dst = append(dst, f.parse(work[pos:end], work[pos:next]))
		pos, from = next, next
	}
	if len(work)-pos > maxPending {
		dst = append(dst, f.parse(work[pos:], work[pos:]))
		pos, f.scan = len(work), 0
	}
	switch {
	case len(f.buf) == 0: // work is chunk: keep its unfinished tail
		f.buf = append(f.buf, work[pos:]...)
	case pos == len(f.buf):
		f.buf = f.buf[:0]
	default:
		f.start = pos
	}
	if len(f.buf) == 0 && cap(f.buf) > keepBuf {
		f.buf = nil
	}
	return dst
}

// Flush returns the last event if the stream ended without a blank line.
func (f *Framer) Flush(dst []Event) []Event {
	if rest := f.buf[f.start:]; len(bytes.TrimSpace(rest)) > 0 {
		dst = append(dst, f.parse(rest, rest))
	}
	f.buf, f.start, f.scan = nil, 0, 0
	return dst
}

// Pending is the number of bytes held for an unfinished event.
func (f *Framer) Pending() int { return len(f.buf) - f.start }

// lineEnds finds the line endings of b at memchr speed. It remembers the
// next CR and the next LF, so text with only one kind of line ending is
// scanned once, not once per line.
type lineEnds struct {
	b      []byte
	cr, lf int // next '\r' and '\n' at or after the last search; len(b) if none, -1 before the first
}

// next is the index of the first CR or LF at or after i, len(b) if none.
func (l *lineEnds) next(i int) int {
	if l.cr < i {
		l.cr = indexFrom(l.b, i, '\r')
	}
	if l.lf < i {
		l.lf = indexFrom(l.b, i, '\n')
	}
	return min(l.cr, l.lf)
}

func indexFrom(b []byte, i int, c byte) int {
	if k := bytes.IndexByte(b[i:], c); k >= 0 {
		return i + k
	}
	return len(b)
}

// eventEnd finds the blank line ending the event whose end is searched
// from i (the start of a line, or the position a previous search resumed
// at): end is where the event's lines stop, next where the following event
// starts; end is -1 if b holds no end yet, and resume is then where the
// search must start again once more bytes arrive (the line ending that may
// still become a blank line).
func (l *lineEnds) eventEnd(i int) (end, next, resume int) {
	b := l.b
	for {
		t := l.next(i)
		if t == len(b) {
			return -1, -1, len(b)
		}
		// t ends a line; a line ending directly after it means a blank line.
		j := t + 1
		if b[t] == '\r' && j < len(b) && b[j] == '\n' {
			j++
		}
		if j == len(b) {
			return -1, -1, t // a CR may be half of CRLF; an LF may be followed by another
		}
		if b[j] == '\n' || b[j] == '\r' {
			k := j + 1
			if b[j] == '\r' {
				if k == len(b) {
					return -1, -1, t
				}
				if b[k] == '\n' {
					k++
				}
			}
			return t, k, 0
		}
		i = j
	}
}

// parse reads the fields of one event's lines. Data points into lines
// unless the event has several data lines, which are joined in a new slice.
func (f *Framer) parse(lines, raw []byte) Event {
	ev := Event{Raw: raw}
	var data []byte
	ndata := 0
	le := lineEnds{b: lines, cr: -1, lf: -1}
	for i := 0; i < len(lines); {
		e := le.next(i)
		line := lines[i:e]
		i = e + 1 // an LF after a CR leaves an empty line, skipped below
		if len(line) == 0 || line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if c := bytes.IndexByte(line, ':'); c >= 0 {
			field, value = line[:c], line[c+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			switch ndata {
			case 0:
				data = value
			case 1:
				data = append(append(append(make([]byte, 0, len(data)+1+len(value)), data...), '\n'), value...)
			default:
				data = append(append(data, '\n'), value...)
			}
			ndata++
		case "event":
			if string(value) != f.name {
				f.name = string(value)
			}
			ev.Name = f.name
		case "id":
			ev.ID = string(value)
		}
	}
	if data == nil {
		data = []byte{} // as bytes.Join gave: present, empty
	}
	ev.Data = data
	return ev
}
