// Package config loads a configuration made of modules' settings: every
// setting is a command-line flag and a key of the optional YAML file,
// declared once by the module that owns it (its Config struct registers
// its flags with their defaults and names its YAML keys). Precedence: flag
// given on the command line, then YAML file, then default.
//
// A flag -section.some-key is the YAML key some_key in the mapping section
// (dashes become underscores; -remote-write.* lives under remote_write):
//
//	storage:
//	  path: /var/lib/strata        # -storage.path=/var/lib/strata
//	  out_of_order_window: 30m     # -storage.out-of-order-window=30m
//
// The root of a configuration (for Strata, server.Config) composes the
// modules' structs as the file's sections; this package knows none of them.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/internal/flagext"
	"github.com/strata-tsdb/strata/secret"
)

// Root is a whole configuration.
type Root interface {
	// RegisterFlags registers every setting on fs with its default, and
	// sets the configuration to the defaults.
	RegisterFlags(fs *flag.FlagSet)
	// Validate reports the first setting that cannot work.
	Validate() error
	// ConfigFiles returns the settings about the configuration itself.
	ConfigFiles() *Files
}

// Files are the flags about the configuration itself: the file, checking
// it, and the help.
type Files struct {
	// ConfigFile is the optional YAML file.
	ConfigFile string `yaml:"-"`
	// CheckConfig makes the process validate its configuration and exit.
	CheckConfig bool `yaml:"-"`
	// ExpandEnv replaces ${VAR} in the YAML file by the environment's VAR.
	ExpandEnv bool `yaml:"-"`
	// HelpAll asks for the help of every flag.
	HelpAll bool `yaml:"-"`

	// flags are the effective values of every flag after Load, secrets masked.
	flags map[string]string
}

// RegisterFlags registers the flags of f on fs.
func (f *Files) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&f.ConfigFile, "config.file", "", "Optional YAML configuration file. Flags given on the command line override it.")
	fs.BoolVar(&f.CheckConfig, "config.check", false, "Validate the configuration (flags and file) and exit.")
	fs.BoolVar(&f.ExpandEnv, "config.expand-env", false, "Replace ${VAR} in the configuration file by the environment variable VAR (empty when unset), e.g. to pass secrets through the environment; $$ stands for a literal $.")
	fs.BoolVar(&f.HelpAll, "help-all", false, "Print every flag, not only the ones a new user needs (-h), and exit.")
	flagext.MarkBasic("config.file")
}

// Flags returns the effective value of every flag (from the command line,
// the file or the default), secrets shown as secret.Mask, as
// /api/v1/status/flags lists them. It is empty for a configuration not
// built by Load.
func (f *Files) Flags() map[string]string {
	out := make(map[string]string, len(f.flags))
	maps.Copy(out, f.flags)
	return out
}

// Load fills the configuration newRoot returns from args: defaults, then
// the YAML file named by -config.file, then the flags given in args. It
// returns flag.ErrHelp, having printed the help to output, for -h (the
// flags a new user needs) and -help-all (every flag).
func Load(name string, args []string, output io.Writer, newRoot func() Root) (Root, error) {
	probe := newRoot()
	pfs := flag.NewFlagSet(name, flag.ContinueOnError)
	pfs.SetOutput(io.Discard)
	probe.RegisterFlags(pfs)
	perr := pfs.Parse(args)

	c := newRoot()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(output)
	c.RegisterFlags(fs)
	fs.Usage = func() { printHelp(output, name, fs, false) }
	if perr == nil && probe.ConfigFiles().ConfigFile != "" {
		if err := loadFile(c, probe.ConfigFiles().ConfigFile, probe.ConfigFiles().ExpandEnv); err != nil {
			return nil, err
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.ConfigFiles().HelpAll {
		printHelp(output, name, fs, true)
		return nil, flag.ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	files := c.ConfigFiles()
	files.flags = map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { files.flags[f.Name] = f.Value.String() })
	return c, c.Validate()
}

// printHelp prints the flags a new user needs, or all of them.
func printHelp(w io.Writer, name string, fs *flag.FlagSet, all bool) {
	shown := flag.NewFlagSet(name, flag.ContinueOnError)
	shown.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		if all || flagext.IsBasic(f.Name) {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	if all {
		fmt.Fprintf(w, "Usage of %s (every flag):\n", name)
	} else {
		fmt.Fprintf(w, "Usage of %s (the flags a new user needs; -help-all lists every flag, docs/configuration.md documents them):\n", name)
	}
	shown.PrintDefaults()
}

// RedactArgs returns the command-line arguments args (without the program
// name) with the values of the secret flags of newRoot's configuration
// masked.
func RedactArgs(args []string, newRoot func() Root) []string {
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	newRoot().RegisterFlags(fs)
	return secret.RedactArgs(fs, args)
}

func loadFile(c Root, path string, expandEnv bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config file: %w", err)
	}
	if expandEnv {
		b = []byte(os.Expand(string(b), func(name string) string {
			if name == "$" {
				return "$"
			}
			return os.Getenv(name)
		}))
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse config file %s: %w", path, err)
	}
	return nil
}
