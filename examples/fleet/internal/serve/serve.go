// Package serve runs a fleet service's HTTP server: it listens, says where on stdout (the one
// line the demo launcher waits for), serves until its context ends (SIGTERM or SIGINT in the
// binaries), then shuts down gracefully.
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// DefaultShutdownTimeout is how long in-flight requests get to finish after the context ends.
const DefaultShutdownTimeout = 10 * time.Second

// Options configures Run. Name, Addr and Handler are required.
type Options struct {
	Name    string       // the service's name, in "<Name> listening on <addr>"
	Addr    string       // host:port; port 0 picks a free one
	Handler http.Handler // what is served
	Stdout  io.Writer    // where the listening line goes; nil = io.Discard

	// BeforeShutdown, if set, is called once the context ends, before the server stops
	// accepting requests (to release calls told to hang, for instance).
	BeforeShutdown func()
	// ShutdownTimeout bounds the graceful shutdown; 0 = DefaultShutdownTimeout. Requests still
	// running then are cut off.
	ShutdownTimeout time.Duration
}

// Run listens on o.Addr, writes "<Name> listening on <addr>\n" to o.Stdout once bound, and
// serves until ctx ends; it then stops accepting connections and waits up to
// o.ShutdownTimeout for in-flight requests. It returns nil after a clean shutdown, or the
// error that stopped the server.
func Run(ctx context.Context, o Options) error {
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("%s: cannot listen on %s: %w (use -addr host:port, e.g. 127.0.0.1:0 for any free port)", o.Name, o.Addr, err)
	}
	out := o.Stdout
	if out == nil {
		out = io.Discard
	}
	srv := &http.Server{Handler: o.Handler, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if _, err := fmt.Fprintf(out, "%s listening on %s\n", o.Name, ln.Addr()); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("%s: cannot write the listening line: %w", o.Name, err)
	}
	select {
	case err := <-served:
		return fmt.Errorf("%s: serving on %s: %w", o.Name, ln.Addr(), err)
	case <-ctx.Done():
	}
	if o.BeforeShutdown != nil {
		o.BeforeShutdown()
	}
	timeout := o.ShutdownTimeout
	if timeout == 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		_ = srv.Close()
		err = fmt.Errorf("%s: requests still running after %s were cut off", o.Name, timeout)
	}
	if serr := <-served; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
