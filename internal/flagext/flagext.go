// Package flagext holds what every module's configuration registers its
// flags with: durations that are also YAML keys, and the mark of the few
// flags a new user needs, which `strata -h` shows (the others are listed by
// -help-all, as Mimir's categories do).
package flagext

import (
	"flag"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
)

// DurationVar registers a flag setting d, a model.Duration (so that the
// same field parses "30d" from YAML), with default def.
func DurationVar(fs *flag.FlagSet, d *model.Duration, name string, def time.Duration, usage string) {
	*d = model.Duration(def)
	fs.Var(d, name, usage)
}

var (
	mu    sync.RWMutex
	basic = map[string]bool{}
)

// MarkBasic marks flags as the ones a new user needs: `strata -h` shows
// them, -help-all every flag.
func MarkBasic(names ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, n := range names {
		basic[n] = true
	}
}

// IsBasic reports whether MarkBasic marked flag name.
func IsBasic(name string) bool {
	mu.RLock()
	defer mu.RUnlock()
	return basic[name]
}

// StringList is a list given as a comma-separated flag or a YAML sequence
// (or one comma-separated string).
type StringList []string

func (l *StringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *StringList) Set(s string) error {
	*l = nil
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// UnmarshalYAML accepts a sequence or a comma-separated string.
func (l *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		return l.Set(n.Value)
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}
