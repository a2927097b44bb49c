package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestRunServesUntilCancelled(t *testing.T) {
	deps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasPrefix(r.URL.Path, "/inventory/items/"):
			_, _ = w.Write([]byte(`{"id":"1","name":"item 1"}`))
		case strings.HasPrefix(r.URL.Path, "/prices/"):
			_, _ = w.Write([]byte(`{"id":"1","price_cents":1234,"currency":"EUR"}`))
		default:
			_, _ = w.Write([]byte(`{"items":[]}`))
		}
	}))
	defer deps.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	args := []string{"-addr", "127.0.0.1:0", "-inventory", deps.URL, "-pricing", deps.URL, "-recommendations", deps.URL}
	go func() {
		done <- run(ctx, args, func(string) string { return "" }, pw, io.Discard)
		pw.Close()
	}()
	out := bufio.NewReader(pr)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^storefront listening on (127\.0\.0\.1:[1-9][0-9]*)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("listening line %q", line)
	}
	resp, err := http.Get("http://" + m[1] + "/product/1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"price_cents":1234`) || resp.Header.Get("levee-degraded") != "" {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
	cancel()
	rest, _ := io.ReadAll(out)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("stdout holds more than one line: %q", rest)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-addr", "localhost"}, "-addr \"localhost\""},
		{[]string{"-inventory", "127.0.0.1:8080"}, "-inventory: \"127.0.0.1:8080\" is not a URL"},
		{[]string{"-pricing", "ftp://x"}, "-pricing"},
		{[]string{"-recommendations", "http://x/?a=b"}, "-recommendations"},
		{[]string{"-registry", "registry:9911"}, "-registry"},
		{[]string{"extra"}, "unexpected argument \"extra\""},
	} {
		err := run(context.Background(), tc.args, func(string) string { return "" }, io.Discard, io.Discard)
		var usage usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &usage) {
			t.Errorf("%q: got %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}
