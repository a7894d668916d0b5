package remotewrite

import "github.com/strata-tsdb/strata/ingest"

// The write path's rejection reasons, as the tests name them.
const (
	reasonInvalidLabels = ingest.ReasonInvalidLabels
	reasonOutOfOrder    = ingest.ReasonOutOfOrder
	reasonTooOld        = ingest.ReasonTooOld
	reasonFuture        = ingest.ReasonFuture
	reasonDuplicate     = ingest.ReasonDuplicate
	reasonHistogram     = ingest.ReasonHistogram
	reasonNoSamples     = ingest.ReasonNoSamples
	reasonInvalidMeta   = ingest.ReasonInvalidMeta
	reasonRateLimited   = ingest.ReasonRateLimited
	maxReportedErrors   = ingest.MaxReportedErrors
)
