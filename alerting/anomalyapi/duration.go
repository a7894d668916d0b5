package anomalyapi

import (
	"time"

	"github.com/prometheus/common/model"
)

func parseModelDuration(s string) (time.Duration, error) {
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}
