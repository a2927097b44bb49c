package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()
	out := bufio.NewReader(pr)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^recommendations listening on (127\.0\.0\.1:[1-9][0-9]*)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("listening line %q", line)
	}
	resp, err := http.Get("http://" + m[1] + "/recommendations?item=1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"items"`) {
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
		{[]string{"-addr", "7003"}, "-addr \"7003\""},
		{[]string{"-max-concurrent", "0"}, "-max-concurrent is 0"},
		{[]string{"-timeout", "0s"}, "-timeout is 0s"},
		{[]string{"extra"}, "unexpected argument \"extra\""},
		{[]string{"-nope"}, "flag provided but not defined"},
	} {
		err := run(context.Background(), tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error with %q", tc.args, err, tc.want)
		}
		var usage usageError
		if err != nil && !errors.As(err, &usage) && !strings.Contains(err.Error(), "not defined") {
			t.Errorf("%q: %v is not a usage error", tc.args, err)
		}
	}
}
