package registry

import (
	"reflect"
	"strings"
	"testing"
)

func feedAll(t *testing.T, p *sseParser, chunks ...string) []sseItem {
	t.Helper()
	var items []sseItem
	for _, c := range chunks {
		got, err := p.feed([]byte(c))
		if err != nil {
			t.Fatalf("feed(%q): %v", c, err)
		}
		items = append(items, got...)
	}
	return items
}

func ev(id, event, data string) sseItem {
	return sseItem{id: id, hasID: id != "", event: event, data: data}
}

// The Rust client's parser test, chunk for chunk.
func TestSSEParsesEventsSplitAcrossChunks(t *testing.T) {
	var p sseParser
	if items := feedAll(t, &p, "id: 7\nevent: tog"); len(items) != 0 {
		t.Fatalf("nothing is complete yet, got %+v", items)
	}
	items := feedAll(t, &p, "gle\ndata: {\"a\":\ndata: 1}\r\n\r\n: ping\n")
	want := []sseItem{ev("7", "toggle", "{\"a\":\n1}"), {comment: true}}
	if !reflect.DeepEqual(items, want) {
		t.Fatalf("got %+v, want %+v", items, want)
	}
	// The id persists for later events without one, as the format says.
	items = feedAll(t, &p, "data: x\n\n")
	if want := []sseItem{ev("7", "message", "x")}; !reflect.DeepEqual(items, want) {
		t.Fatalf("got %+v, want %+v", items, want)
	}
}

func TestSSEEventsWithoutDataAreNotDispatched(t *testing.T) {
	var p sseParser
	if items := feedAll(t, &p, "event: x\n\n"); len(items) != 0 {
		t.Fatalf("got %+v", items)
	}
	// ... and their event name does not leak into the next event.
	if items := feedAll(t, &p, "data: y\n\n"); !reflect.DeepEqual(items, []sseItem{ev("", "message", "y")}) {
		t.Fatalf("got %+v", items)
	}
}

func TestSSELineEndingsFieldsAndBOM(t *testing.T) {
	cases := []struct {
		name   string
		chunks []string
		want   []sseItem
	}{
		{"lf", []string{"id: 1\nevent: a\ndata: x\n\n"}, []sseItem{ev("1", "a", "x")}},
		{"crlf", []string{"id: 1\r\nevent: a\r\ndata: x\r\n\r\n"}, []sseItem{ev("1", "a", "x")}},
		{"lone cr", []string{"id: 1\revent: a\rdata: x\r\r"}, []sseItem{ev("1", "a", "x")}},
		{"crlf split between chunks", []string{"data: x\r", "\n\r", "\n"}, []sseItem{ev("", "message", "x")}},
		{"cr then lf-less chunk", []string{"data: x\r", "\r"}, []sseItem{ev("", "message", "x")}},
		{"bom", []string{"\xEF\xBB\xBFdata: x\n\n"}, []sseItem{ev("", "message", "x")}},
		{"bom split", []string{"\xEF", "\xBB", "\xBFdata: x\n\n"}, []sseItem{ev("", "message", "x")}},
		{"no space after colon", []string{"data:x\nid:5\n\n"}, []sseItem{ev("5", "message", "x")}},
		{"only one space stripped", []string{"data:  x\n\n"}, []sseItem{ev("", "message", " x")}},
		{"field without colon", []string{"data\n\n"}, []sseItem{ev("", "message", "")}},
		{"empty data dispatches", []string{"data:\n\n"}, []sseItem{ev("", "message", "")}},
		{"id with NUL ignored", []string{"id: 3\n\nid: 4\x005\ndata: x\n\n"}, []sseItem{ev("3", "message", "x")}},
		{"unknown fields and retry ignored", []string{"retry: 10\nfoo: bar\ndata: x\n\n"}, []sseItem{ev("", "message", "x")}},
		{"comments", []string{":ping\n: ping\n"}, []sseItem{{comment: true}, {comment: true}}},
		{"unterminated event is not dispatched", []string{"data: x\n"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p sseParser
			if got := feedAll(t, &p, tc.chunks...); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// Every split of a stream into two chunks, and byte-by-byte feeding, parse like the whole.
func TestSSEChunkingDoesNotMatter(t *testing.T) {
	stream := "\xEF\xBB\xBFid: 10\r\nevent: breaker\r\ndata: {\"type\":\"breaker\"}\r\n\r\n: ping\n" +
		"id: 11\revent: toggle\rdata: a\rdata: b\r\rdata: c\n\n"
	var whole sseParser
	want := feedAll(t, &whole, stream)
	if len(want) != 4 {
		t.Fatalf("the whole stream parses to %d items: %+v", len(want), want)
	}
	for i := 0; i <= len(stream); i++ {
		var p sseParser
		if got := feedAll(t, &p, stream[:i], stream[i:]); !reflect.DeepEqual(got, want) {
			t.Fatalf("split at %d: got %+v, want %+v", i, got, want)
		}
	}
	var p sseParser
	bytes := make([]string, len(stream))
	for i := 0; i < len(stream); i++ {
		bytes[i] = stream[i : i+1]
	}
	if got := feedAll(t, &p, bytes...); !reflect.DeepEqual(got, want) {
		t.Fatalf("byte by byte: got %+v, want %+v", got, want)
	}
}

func TestSSELongLinesAreRefused(t *testing.T) {
	var p sseParser
	if _, err := p.feed([]byte("data: " + strings.Repeat("x", maxSSELine))); err == nil {
		t.Fatal("a line longer than the limit was accepted")
	}
}

func FuzzSSEParserChunking(f *testing.F) {
	f.Add("id: 1\nevent: a\ndata: x\n\n", 3)
	f.Add("data: x\r\r\n\r\n: c\n", 7)
	f.Fuzz(func(t *testing.T, stream string, split int) {
		if len(stream) > 1<<12 {
			return
		}
		var whole, parts sseParser
		want, err1 := whole.feed([]byte(stream))
		if split < 0 {
			split = -split
		}
		split %= len(stream) + 1
		a, err2 := parts.feed([]byte(stream[:split]))
		b, err3 := parts.feed([]byte(stream[split:]))
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("errors: %v %v %v", err1, err2, err3)
		}
		if got := append(a, b...); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("split at %d: got %+v, want %+v", split, got, want)
		}
	})
}
