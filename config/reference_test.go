package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/strata-tsdb/strata/config"
	"github.com/strata-tsdb/strata/server"
)

//go:generate go run ../cmd/strata tools config-reference -update ../docs/configuration.md

// TestReferenceUpToDate fails when the committed configuration reference
// differs from the one the code generates.
func TestReferenceUpToDate(t *testing.T) {
	path := filepath.Join("..", "docs", "configuration.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the committed reference: %v", err)
	}
	want, err := config.ReplaceReference(string(b), server.NewConfig)
	if err != nil {
		t.Fatal(err)
	}
	if want != string(b) {
		t.Fatalf("%s is out of date with the code's flags and YAML keys: run `make docs` and commit the result", path)
	}
}

// TestSettingsCoverEveryFlag: every flag is in the reference, and every
// documented YAML path is a key Load accepts (an unknown key is an error).
func TestSettingsCoverEveryFlag(t *testing.T) {
	c := server.NewConfig()
	fs := flag.NewFlagSet("strata", flag.ContinueOnError)
	c.RegisterFlags(fs)
	byFlag := map[string]config.Setting{}
	for _, s := range config.Settings(server.NewConfig) {
		if s.Flag != "" {
			byFlag[s.Flag] = s
		}
	}
	fs.VisitAll(func(f *flag.Flag) {
		s, ok := byFlag[f.Name]
		switch {
		case !ok:
			t.Errorf("flag -%s is missing from the reference", f.Name)
		case s.Help != f.Usage || s.Default != f.DefValue:
			t.Errorf("flag -%s: reference has help %q default %q", f.Name, s.Help, s.Default)
		case s.YAMLPath == "" && !strings.HasPrefix(f.Name, "config.") && f.Name != "help-all": // flags about the configuration itself
			t.Errorf("flag -%s is bound to no YAML key of Config", f.Name)
		}
	})
	for _, s := range config.Settings(server.NewConfig) {
		if s.YAMLPath == "" {
			continue
		}
		t.Run(s.YAMLPath, func(t *testing.T) {
			doc := yamlFor(t, s)
			if _, err := server.LoadConfig([]string{"-config.file", writeFile(t, doc)}, nil); err != nil && strings.Contains(err.Error(), "not found") {
				t.Fatalf("YAML path %s is not a key of the configuration file: %v\n%s", s.YAMLPath, err, doc)
			}
		})
	}
}

// yamlFor builds a YAML document that sets s's key to a value of its type.
func yamlFor(t *testing.T, s config.Setting) string {
	t.Helper()
	var value any
	switch s.Type {
	case "bool":
		value = true
	case "int":
		value = 1
	case "float":
		value = 1.5
	case "duration":
		value = "1m"
	case "list of strings":
		value = []string{"x"}
	case "map of string to string", "map of string to list of strings":
		value = map[string]any{}
	default:
		value = "x"
	}
	parts := strings.Split(s.YAMLPath, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		p := parts[i]
		switch {
		case p == "<key>":
			value = map[string]any{"team-a": value}
		case strings.HasSuffix(p, "[]"):
			value = map[string]any{strings.TrimSuffix(p, "[]"): []any{value}}
		default:
			value = map[string]any{p: value}
		}
	}
	b, err := yaml.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestReplaceReference(t *testing.T) {
	doc := "intro\n" + config.ReferenceBegin + "\nstale\n" + config.ReferenceEnd + "\nafter\n"
	got, err := config.ReplaceReference(doc, server.NewConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "intro\n"+config.ReferenceBegin+"\n### Command line only") || !strings.HasSuffix(got, config.ReferenceEnd+"\nafter\n") || strings.Contains(got, "stale") {
		t.Fatalf("ReplaceReference kept or lost the wrong text:\n%s", got)
	}
	if _, err := config.ReplaceReference("no markers", server.NewConfig); err == nil {
		t.Fatal("ReplaceReference accepted a document without markers")
	}
	if !strings.Contains(got, "| `-storage.path` | `storage.path` | string | `./data` |") {
		t.Fatalf("the reference does not document -storage.path as expected:\n%s", got)
	}
}
