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

// Framer splits a byte stream into SSE events, across chunk boundaries. It
// accepts LF, CRLF and CR line endings, skips comment lines (":…"), joins
// multi-line data, and returns a final event without a trailing blank line
// from Flush. Zero value ready to use; not safe for concurrent use.
type Framer struct {
	buf []byte
}

// Feed adds a chunk and returns the events it completed. The returned
// events (and their byte slices) stay valid until the next call.
func (f *Framer) Feed(chunk []byte, dst []Event) []Event {
	f.buf = append(f.buf, chunk...)
	for {
		end, next := eventEnd(f.buf)
		if end < 0 {
			if len(f.buf) > maxPending {
				dst = append(dst, parse(f.buf, f.buf))
				f.buf = f.buf[:0]
			}
			return dst
		}
		raw := f.buf[:next]
		dst = append(dst, parse(f.buf[:end], raw))
		// Keep the remainder; copy so the next append does not clobber
		// slices returned above.
		rest := append([]byte(nil), f.buf[next:]...)
		f.buf = rest
	}
}

// Flush returns the last event if the stream ended without a blank line.
func (f *Framer) Flush(dst []Event) []Event {
	if len(bytes.TrimSpace(f.buf)) > 0 {
		dst = append(dst, parse(f.buf, f.buf))
	}
	f.buf = nil
	return dst
}

// Pending is the number of bytes held for an unfinished event.
func (f *Framer) Pending() int { return len(f.buf) }

// eventEnd finds the blank line ending the first event: end is where the
// event's lines stop, next where the following event starts; -1 if none.
func eventEnd(b []byte) (end, next int) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\n' && c != '\r' {
			continue
		}
		// i ends a line; a line ending directly after it means a blank line.
		j := i + 1
		if c == '\r' && j < len(b) && b[j] == '\n' {
			j++
		}
		if c == '\r' && j == len(b) {
			return -1, -1 // a lone CR at the end may be half of CRLF
		}
		if j < len(b) && (b[j] == '\n' || b[j] == '\r') {
			k := j + 1
			if b[j] == '\r' {
				if k == len(b) {
					return -1, -1
				}
				if b[k] == '\n' {
					k++
				}
			}
			return i, k
		}
		i = j - 1
	}
	return -1, -1
}

// parse reads the fields of one event's lines.
func parse(lines, raw []byte) Event {
	ev := Event{Raw: raw}
	var data [][]byte
	for len(lines) > 0 {
		var line []byte
		if i := bytes.IndexAny(lines, "\r\n"); i >= 0 {
			line = lines[:i]
			lines = lines[i+1:]
			if lines2 := lines; len(lines2) > 0 && line != nil && i < len(raw) && raw[i] == '\r' && lines2[0] == '\n' {
				lines = lines[1:]
			}
		} else {
			line, lines = lines, nil
		}
		if len(line) == 0 || line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			data = append(data, value)
		case "event":
			ev.Name = string(value)
		case "id":
			ev.ID = string(value)
		}
	}
	ev.Data = bytes.Join(data, []byte("\n"))
	return ev
}
