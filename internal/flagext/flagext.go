// Package flagext holds what every module's configuration registers its
// flags with: durations that are also YAML keys, and the mark of the few
// flags a new user needs, which `strata -h` shows (the others are listed by
// -help-all, as Mimir's categories do).
package flagext

import (
	"flag"
	"sync"
	"time"

	"github.com/prometheus/common/model"
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
