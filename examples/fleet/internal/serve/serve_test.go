package serve_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/levee-dev/levee/examples/fleet/internal/serve"
)

func TestRunPrintsTheAddressServesAndShutsDown(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	released := false
	done := make(chan error, 1)
	go func() {
		done <- serve.Run(ctx, serve.Options{
			Name:           "svc",
			Addr:           "127.0.0.1:0",
			Handler:        http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hi")) }),
			Stdout:         pw,
			BeforeShutdown: func() { released = true },
		})
		pw.Close()
	}()
	out := bufio.NewReader(pr)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listening line: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "svc listening on ")
	if !ok || !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Fatalf("listening line %q", line)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hi" {
		t.Fatalf("served %q", b)
	}
	cancel()
	rest, _ := io.ReadAll(out)
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if len(rest) != 0 {
		t.Fatalf("stdout got more than the listening line: %q", rest)
	}
	if !released {
		t.Fatal("BeforeShutdown was not called")
	}
	if _, err := http.Get("http://" + addr + "/"); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestRunSaysWhyItCannotListen(t *testing.T) {
	err := serve.Run(context.Background(), serve.Options{Name: "svc", Addr: "127.0.0.1:99999", Handler: http.NotFoundHandler()})
	if err == nil || !strings.Contains(err.Error(), "svc: cannot listen on 127.0.0.1:99999") || !strings.Contains(err.Error(), "-addr") {
		t.Fatalf("got %v", err)
	}
}
