// Command greeter runs the sandbox's helloworld.Greeter service (package sandbox/greeter):
// it answers "Hello, <name>! I'm from <instance>!", serves server reflection, and can fail
// a share of its calls or answer late, to play a healthy or a broken canary.
//
//	greeter -listen 127.0.0.1:50051 -instance grpc-helloworld-py-v2 -error-rate 0.05 -error-code UNAVAILABLE
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"

	"github.com/canarydio/canaryd/sandbox/greeter"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "greeter:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("greeter", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:50051", "address to listen on")
	host, _ := os.Hostname()
	instance := fs.String("instance", host, "instance name the replies carry")
	errorRate := fs.Float64("error-rate", 0, "share of calls (0..1) that fail with -error-code")
	errorCode := fs.String("error-code", "UNAVAILABLE", "gRPC status of a failed call: a name such as UNAVAILABLE or a number")
	latency := fs.Duration("latency", 0, "latency added to every call")
	refl := fs.Bool("reflection", true, "serve gRPC server reflection")
	certFile := fs.String("tls-cert", "", "serve TLS with this PEM certificate (needs -tls-key)")
	keyFile := fs.String("tls-key", "", "the PEM key of -tls-cert")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var tlsConf *tls.Config
	if *certFile != "" || *keyFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			return fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	code, err := parseCode(*errorCode)
	if err != nil {
		return err
	}
	srv, err := greeter.NewServer(greeter.Options{
		Instance: *instance, ErrorRate: *errorRate, ErrorCode: code, Latency: *latency, Reflection: *refl, TLS: tlsConf,
	})
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	log.Info("serving", "addr", lis.Addr().String(), "instance", *instance, "error_rate", *errorRate, "latency", *latency)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	return srv.Serve(lis)
}

// parseCode accepts a gRPC code by name (UNAVAILABLE, Unavailable) or number (14).
func parseCode(s string) (codes.Code, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && n <= 16 {
		return codes.Code(n), nil
	}
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(s)))); err != nil {
		return 0, fmt.Errorf("-error-code: %q is not a gRPC status code", s)
	}
	return c, nil
}
