// Command strata is Strata's single binary: a remote-write receiver, a
// multi-tenant store and the Prometheus query API.
//
// With no flags it listens on :9201 and keeps its data in ./data.
// strata -h lists the flags a new user needs, strata -help-all every flag;
// -config.file reads the same settings from YAML.
//
// Subcommands:
//
//	strata tools bucket ls|inspect|verify [bucket flags]
//	    lists, inspects and verifies the blocks in the bucket.
//	strata detect [--detector NAME] [--PARAM VALUE ...] FILE.csv
//	    scores a timestamp,value CSV with an anomaly detector (strata detect -h).
//	strata tools config-reference [-update FILE.md]
//	    prints the Markdown reference of every flag and YAML key, or rewrites
//	    the generated part of FILE.md (make docs).
//	strata tools healthcheck [-url URL]
//	    exits 0 when Strata's /-/ready answers 200 (the container's health check).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/common/version"

	"github.com/strata-tsdb/strata/alerting/detect"
	"github.com/strata-tsdb/strata/server"
	"github.com/strata-tsdb/strata/tools/bucket"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 1 && args[0] == "tools" && args[1] == "bucket" {
		return bucket.Command(args[2:], os.Stdout, os.Stderr)
	}
	if len(args) > 1 && args[0] == "tools" && args[1] == "config-reference" {
		return configReference(args[2:])
	}
	if len(args) > 1 && args[0] == "tools" && args[1] == "healthcheck" {
		return healthcheck(args[2:])
	}
	if len(args) > 0 && args[0] == "detect" {
		return detect.Command(args[1:], os.Stdin, os.Stdout, os.Stderr)
	}
	if version.Version == "" {
		version.Version = "0.1.0-dev"
	}
	cfg, err := server.LoadConfig(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata: configuration error:", err)
		return 2
	}
	if cfg.CheckConfig {
		fmt.Println("strata: configuration is valid")
		return 0
	}
	logger, err := server.NewLogger(cfg.Log, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(cfg, logger)
	if err != nil {
		logger.Error("startup failed", "err", err)
		return 1
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("exited with error", "err", err)
		return 1
	}
	return 0
}
