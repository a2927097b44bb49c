// Command recommendations is the demo fleet's sheddable recommendations service (see
// internal/recommend): GET /recommendations?item=ID, /healthz, /metrics and the /control/*
// chaos endpoints.
//
//	recommendations [-addr 127.0.0.1:7003] [-max-concurrent 16] [-timeout 1s]
//
// It prints "recommendations listening on <addr>" once bound and shuts down gracefully on
// SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/levee-dev/levee/examples/fleet/internal/recommend"
	"github.com/levee-dev/levee/examples/fleet/internal/serve"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		var usage usageError
		switch {
		case errors.Is(err, flag.ErrHelp):
			os.Exit(2)
		case errors.As(err, &usage):
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// usageError is a bad command line (exit status 2).
type usageError struct{ error }

// run parses args, then serves until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("recommendations", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:7003", "listen address host:port (port 0 = any free port)")
	maxConcurrent := fs.Int("max-concurrent", recommend.DefaultMaxConcurrent, "requests in flight at once; sheddable ones may fill half")
	timeout := fs.Duration("timeout", recommend.DefaultTimeout, "longest time a request may take (the caller's levee-timeout-ms may shorten it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("recommendations: unexpected argument %q: every option is a flag (see -help)", fs.Arg(0))}
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usageError{fmt.Errorf("recommendations: -addr %q: %v; use host:port, e.g. 127.0.0.1:7003", *addr, err)}
	}
	if *maxConcurrent < 1 {
		return usageError{fmt.Errorf("recommendations: -max-concurrent is %d: use 1 or more", *maxConcurrent)}
	}
	if *timeout <= 0 {
		return usageError{fmt.Errorf("recommendations: -timeout is %s: use a positive duration such as 1s", *timeout)}
	}
	svc, err := recommend.New(recommend.Config{MaxConcurrent: *maxConcurrent, Timeout: *timeout})
	if err != nil {
		return err
	}
	return serve.Run(ctx, serve.Options{
		Name:            "recommendations",
		Addr:            *addr,
		Handler:         svc.Handler(),
		Stdout:          stdout,
		BeforeShutdown:  svc.Chaos().Close,
		ShutdownTimeout: 10 * time.Second,
	})
}
