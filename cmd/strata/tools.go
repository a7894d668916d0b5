package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/strata-tsdb/strata/config"
	"github.com/strata-tsdb/strata/server"
)

// configReference prints the configuration reference, or with -update
// rewrites the generated part of a Markdown file.
func configReference(args []string) int {
	fs := flag.NewFlagSet("strata tools config-reference", flag.ContinueOnError)
	update := fs.String("update", "", "Markdown file whose generated reference (between the marker comments) is rewritten; empty prints the reference.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *update == "" {
		if err := config.WriteReference(os.Stdout, server.NewConfig); err != nil {
			fmt.Fprintln(os.Stderr, "strata:", err)
			return 1
		}
		return 0
	}
	if err := config.UpdateReferenceFile(*update, server.NewConfig); err != nil {
		fmt.Fprintln(os.Stderr, "strata:", err)
		return 1
	}
	return 0
}

// healthcheck asks a Strata whether it is ready: the container image has no
// shell or curl, so its HEALTHCHECK runs the binary itself.
func healthcheck(args []string) int {
	fs := flag.NewFlagSet("strata tools healthcheck", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1"+server.DefaultListenAddress+"/-/ready", "Readiness URL to check.")
	timeout := fs.Duration("timeout", 5*time.Second, "How long to wait for the answer.")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata: healthcheck:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata: healthcheck:", err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "strata: healthcheck:", *url, "answered", resp.Status)
		return 1
	}
	return 0
}
