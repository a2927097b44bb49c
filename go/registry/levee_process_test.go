package registry

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The integration tests run the real registry: the Rust `levee` binary's `levee registry`.
//
//   - LEVEE_BIN set: that binary is used; a path that is not an executable file fails the
//     tests (it never skips them). `make go-test` builds the binary and sets it.
//   - LEVEE_BIN unset: the first integration test builds it with `cargo build -q -p levee`
//     from the repository root and uses the executable cargo reports (so CARGO_TARGET_DIR is
//     honoured). No cargo fails the tests too, saying what to do; only `go test -short`
//     skips them.

const (
	reporterToken = "reporter-token-for-go-tests"
	operatorToken = "operator-token-for-go-tests"
)

var leveeBin struct {
	once sync.Once
	path string
	err  error
}

// leveeBinary returns the `levee` binary, building it on first use when LEVEE_BIN is unset.
func leveeBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() && os.Getenv("LEVEE_BIN") == "" {
		t.Skip("-short: the registry integration tests need the Rust levee binary (set LEVEE_BIN or drop -short)")
	}
	leveeBin.once.Do(func() { leveeBin.path, leveeBin.err = findLevee() })
	if leveeBin.err != nil {
		t.Fatal(leveeBin.err)
	}
	return leveeBin.path
}

func findLevee() (string, error) {
	if p := os.Getenv("LEVEE_BIN"); p != "" {
		info, err := os.Stat(p)
		switch {
		case err != nil:
			return "", fmt.Errorf("LEVEE_BIN=%s: %v: build the binary with `cargo build -p levee` (it is target/debug/levee) or unset LEVEE_BIN to let the tests build it", p, err)
		case info.IsDir() || info.Mode()&0o111 == 0:
			return "", fmt.Errorf("LEVEE_BIN=%s is not an executable file: point it at the levee binary (target/debug/levee after `cargo build -p levee`)", p)
		}
		return filepath.Abs(p)
	}
	cargo := os.Getenv("CARGO")
	if cargo == "" {
		var err error
		if cargo, err = exec.LookPath("cargo"); err != nil {
			return "", errors.New("the registry integration tests need the Rust levee binary, and cargo is not on PATH: " +
				"install Rust (https://rustup.rs) or set LEVEE_BIN=/path/to/levee (`make go-test` does both for you)")
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "Cargo.toml")); err != nil {
		return "", fmt.Errorf("cannot find the Rust workspace at %s to build levee: set LEVEE_BIN=/path/to/levee", root)
	}
	cmd := exec.Command(cargo, "build", "-q", "-p", "levee", "--message-format=json-render-diagnostics")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("`cargo build -q -p levee` in %s failed (%v):\n%s\nfix the build, or set LEVEE_BIN=/path/to/levee", root, err, stderr.String())
	}
	for _, line := range bytes.Split(out, []byte("\n")) {
		var msg struct {
			Reason string `json:"reason"`
			Target struct {
				Name string   `json:"name"`
				Kind []string `json:"kind"`
			} `json:"target"`
			Executable *string `json:"executable"`
		}
		if json.Unmarshal(line, &msg) == nil && msg.Reason == "compiler-artifact" && msg.Target.Name == "levee" && msg.Executable != nil {
			return *msg.Executable, nil
		}
	}
	return "", fmt.Errorf("`cargo build -p levee` in %s reported no levee executable: set LEVEE_BIN=/path/to/levee", root)
}

// registryProcess is a `levee registry` on a loopback port, killed when the test ends.
type registryProcess struct {
	t      *testing.T
	cmd    *exec.Cmd
	url    string
	port   int
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (p *registryProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.Write(b)
}

// startRegistry starts `levee registry` on port (0: a free one) with the test tokens.
func startRegistry(t *testing.T, port int, args ...string) *registryProcess {
	t.Helper()
	bin := leveeBinary(t)
	if port == 0 {
		port = freePort(t)
	}
	p := &registryProcess{t: t, port: port, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"registry", "--listen", fmt.Sprintf("127.0.0.1:%d", port)}, args...)...)
	p.cmd.Env = append(os.Environ(),
		"LEVEE_REGISTRY_REPORTER_TOKEN="+reporterToken,
		"LEVEE_REGISTRY_OPERATOR_TOKEN="+operatorToken,
		"RUST_LOG=warn")
	p.cmd.Stderr = p
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s registry: %v", bin, err)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("levee registry (port %d) stderr:\n%s", port, p.stderr.String())
			p.mu.Unlock()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	select {
	case line := <-lines:
		for _, w := range strings.Fields(line) {
			if strings.HasPrefix(w, "http://") {
				p.url = w
			}
		}
		if p.url == "" {
			t.Fatalf("levee registry printed %q, with no URL", line)
		}
	case <-p.exited:
		t.Fatalf("levee registry exited at start: %s", p.stderr.String())
	case <-time.After(testDeadline):
		t.Fatal("levee registry did not print its listening line")
	}
	return p
}

// kill stops the process this test started (by its own handle, nothing else).
func (p *registryProcess) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// api calls the registry with token and decodes the JSON answer into out (when not nil).
func (p *registryProcess) api(token, method, path string, body any, out any) int {
	p.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			p.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.url+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		p.t.Fatalf("%s %s: HTTP %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			p.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (p *registryProcess) operator(method, path string, body any) {
	p.t.Helper()
	p.api(operatorToken, method, path, body, nil)
}
