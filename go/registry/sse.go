package registry

import (
	"bytes"
	"fmt"
	"strings"
)

// maxSSELine is the longest line the watch stream may send; a longer one means the peer is
// not an SSE server (the Rust client's limit).
const maxSSELine = 16 << 20

// sseItem is one parsed item of a text/event-stream: a dispatched event, or a comment (the
// registry's heartbeat).
type sseItem struct {
	comment bool
	id      string
	hasID   bool
	event   string // "message" when the event named none
	data    string // the data lines joined with "\n"
}

// sseParser parses the WHATWG text/event-stream format incrementally over arbitrary chunk
// boundaries. Lines end with LF, CRLF or a lone CR; a leading byte order mark is skipped;
// `id` (unless it holds NUL), `event`, `data` and comments are interpreted, `retry` and
// unknown fields ignored. Like the Rust client's parser, the last id persists for later
// events without one, and an event without data is not dispatched.
type sseParser struct {
	buf     []byte
	started bool // past the optional byte order mark
	skipLF  bool // the previous chunk ended with CR: a leading LF belongs to that line end

	id      string
	hasID   bool
	event   string
	data    strings.Builder
	hasData bool
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// feed adds a chunk and returns the items it completed. It fails when a line exceeds
// maxSSELine.
func (p *sseParser) feed(chunk []byte) ([]sseItem, error) {
	if p.skipLF && len(chunk) > 0 {
		p.skipLF = false
		if chunk[0] == '\n' {
			chunk = chunk[1:]
		}
	}
	p.buf = append(p.buf, chunk...)
	if !p.started {
		if len(p.buf) < len(utf8BOM) && bytes.HasPrefix(utf8BOM, p.buf) {
			return nil, nil // maybe a BOM split across chunks
		}
		p.buf = bytes.TrimPrefix(p.buf, utf8BOM)
		p.started = true
	}
	var items []sseItem
	start := 0
	for {
		i := bytes.IndexAny(p.buf[start:], "\r\n")
		if i < 0 {
			break
		}
		end := start + i
		next := end + 1
		if p.buf[end] == '\r' {
			if next < len(p.buf) {
				if p.buf[next] == '\n' {
					next++
				}
			} else {
				p.skipLF = true
			}
		}
		if item, ok := p.line(p.buf[start:end]); ok {
			items = append(items, item)
		}
		start = next
	}
	rest := copy(p.buf, p.buf[start:])
	p.buf = p.buf[:rest]
	if len(p.buf) > maxSSELine {
		return items, fmt.Errorf("an SSE line is longer than %d bytes", maxSSELine)
	}
	return items, nil
}

func (p *sseParser) line(line []byte) (sseItem, bool) {
	if len(line) == 0 {
		if !p.hasData {
			p.event = ""
			return sseItem{}, false
		}
		item := sseItem{id: p.id, hasID: p.hasID, event: p.event, data: p.data.String()}
		if item.event == "" {
			item.event = "message"
		}
		p.event = ""
		p.data.Reset()
		p.hasData = false
		return item, true
	}
	if line[0] == ':' {
		return sseItem{comment: true}, true
	}
	field, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		field, value = line[:i], line[i+1:]
		value = bytes.TrimPrefix(value, []byte{' '})
	}
	switch string(field) {
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			p.id, p.hasID = string(value), true
		}
	case "event":
		p.event = string(value)
	case "data":
		if p.hasData {
			p.data.WriteByte('\n')
		}
		p.data.Write(value)
		p.hasData = true
	}
	return sseItem{}, false
}
