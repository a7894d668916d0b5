package cluster

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kit/log"
)

// kitLogger hands dskit's go-kit log lines to slog: dskit logs through
// go-kit, Strata through slog. A "level" key sets the slog level and a
// "msg" key the message; the other pairs become attributes.
type kitLogger struct{ l *slog.Logger }

var _ log.Logger = kitLogger{}

func (k kitLogger) Log(keyvals ...any) error {
	lvl, msg := slog.LevelInfo, ""
	attrs := make([]any, 0, len(keyvals))
	for i := 0; i+1 < len(keyvals); i += 2 {
		key := fmt.Sprint(keyvals[i])
		switch key {
		case "level":
			switch fmt.Sprint(keyvals[i+1]) {
			case "debug":
				lvl = slog.LevelDebug
			case "warn":
				lvl = slog.LevelWarn
			case "error":
				lvl = slog.LevelError
			}
		case "msg":
			msg = fmt.Sprint(keyvals[i+1])
		case "caller", "ts":
		default:
			attrs = append(attrs, key, keyvals[i+1])
		}
	}
	k.l.Log(context.Background(), lvl, msg, attrs...)
	return nil
}
