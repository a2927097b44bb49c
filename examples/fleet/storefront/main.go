// Command storefront is the demo fleet's front service (see internal/storefront):
// GET /product/{id}, /healthz, /metrics and the /control/* chaos endpoints.
//
//	storefront [-addr 127.0.0.1:8000] [-inventory http://127.0.0.1:8080]
//	           [-pricing http://127.0.0.1:7004] [-recommendations http://127.0.0.1:7003]
//	           [-registry http://127.0.0.1:9911]
//
// With -registry (reporter token from LEVEE_REGISTRY_TOKEN) its breakers join the fleet;
// without it they are local. It prints "storefront listening on <addr>" once bound and shuts
// down gracefully on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/levee-dev/levee/examples/fleet/internal/serve"
	"github.com/levee-dev/levee/examples/fleet/internal/storefront"
	"github.com/levee-dev/levee/go/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
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

// run parses args, then serves until ctx ends. Logs (JSON lines) go to stderr; stdout gets
// only the listening line.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("storefront", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8000", "listen address host:port (port 0 = any free port)")
	inventory := fs.String("inventory", storefront.DefaultInventory, "base URL of the inventory service's Levee sidecar")
	pricing := fs.String("pricing", storefront.DefaultPricing, "base URL of the pricing service")
	recommendations := fs.String("recommendations", storefront.DefaultRecommendations, "base URL of the recommendations service")
	registryURL := fs.String("registry", "", "fleet registry URL (token from "+registry.TokenEnv+"); empty = local breakers only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("storefront: unexpected argument %q: every option is a flag (see -help)", fs.Arg(0))}
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return usageError{fmt.Errorf("storefront: -addr %q: %v; use host:port, e.g. 127.0.0.1:8000", *addr, err)}
	}
	for _, f := range []struct{ name, value string }{
		{"inventory", *inventory}, {"pricing", *pricing}, {"recommendations", *recommendations},
	} {
		if _, err := storefront.ParseBaseURL(f.value); err != nil {
			return usageError{fmt.Errorf("storefront: -%s: %v", f.name, err)}
		}
	}
	cfg := storefront.Config{
		Inventory:       *inventory,
		Pricing:         *pricing,
		Recommendations: *recommendations,
		Logger:          slog.New(slog.NewJSONHandler(stderr, nil)).With("service", storefront.ServiceName),
	}
	if *registryURL != "" {
		if _, err := storefront.ParseBaseURL(*registryURL); err != nil {
			return usageError{fmt.Errorf("storefront: -registry: %v", err)}
		}
		cfg.Registry = &registry.Config{URL: *registryURL, Token: getenv(registry.TokenEnv)}
	}
	svc, err := storefront.New(cfg)
	if err != nil {
		return err
	}
	svc.Start(ctx)
	err = serve.Run(ctx, serve.Options{
		Name:           storefront.ServiceName,
		Addr:           *addr,
		Handler:        svc.Handler(),
		Stdout:         stdout,
		BeforeShutdown: svc.Chaos().Close,
	})
	if cerr := svc.Close(); cerr != nil {
		cfg.Logger.Warn("could not send the last outcomes to the registry", "error", cerr.Error())
	}
	return err
}
