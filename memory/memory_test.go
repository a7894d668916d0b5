package memory

import (
	"log/slog"
	"os"
	"runtime/debug"
	"testing"
)

func TestGOGCFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int
	}{
		{"", DefaultGOGC},
		{"50", 50},
		{"off", -1},
		{"bogus", DefaultGOGC},
	} {
		t.Setenv("GOGC", tc.env)
		if got := GOGCFromEnv(); got != tc.want {
			t.Errorf("GOGC=%q: got %d, want %d", tc.env, got, tc.want)
		}
	}
}

func TestSettingsValidate(t *testing.T) {
	for _, tc := range []struct {
		s  Settings
		ok bool
	}{
		{Settings{GOGC: 75, LimitRatio: 0.9}, true},
		{Settings{GOGC: 75, Limit: 1 << 30}, true},
		{Settings{GOGC: 75}, true},
		{Settings{GOGC: 75, Limit: -1}, false},
		{Settings{GOGC: 75, LimitRatio: 1.5}, false},
		{Settings{GOGC: 75, LimitRatio: -0.1}, false},
	} {
		if err := tc.s.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: error %v, want ok=%v", tc.s, err, tc.ok)
		}
	}
}

// TestApply sets the process's GOGC and memory limit and restores them.
func TestApply(t *testing.T) {
	oldGC := debug.SetGCPercent(100)
	oldLimit := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(oldGC)
		debug.SetMemoryLimit(oldLimit)
	})
	logger := slog.New(slog.DiscardHandler)
	if err := Apply(Settings{GOGC: 60, Limit: 3 << 30}, logger); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetGCPercent(60); got != 60 {
		t.Errorf("GOGC = %d, want 60", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("memory limit = %d, want %d", got, 3<<30)
	}
	// A ratio derives a limit from the cgroup or the machine's memory.
	t.Setenv("GOMEMLIMIT", "")
	os.Unsetenv("GOMEMLIMIT") // t.Setenv restores it after the test
	t.Setenv("AUTOMEMLIMIT", "")
	os.Unsetenv("AUTOMEMLIMIT")
	if err := Apply(Settings{GOGC: 60, LimitRatio: 0.5}, logger); err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got <= 0 || got == 3<<30 {
		t.Errorf("memory limit derived with ratio 0.5 = %d", got)
	}
	if err := Apply(Settings{GOGC: 60, LimitRatio: 2}, logger); err == nil {
		t.Error("ratio 2 accepted")
	}
}
