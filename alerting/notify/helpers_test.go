package notify

import (
	"log/slog"
	"time"

	"github.com/prometheus/common/model"
)

type modelFingerprint = model.Fingerprint

func modelDuration(d time.Duration) model.Duration { return model.Duration(d) }

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
