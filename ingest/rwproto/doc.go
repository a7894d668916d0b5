// Package rwproto decodes Prometheus remote write 1.0 and 2.0 bodies into
// ingest.Request, the one form the write path reads.
//
// Each protocol has two decoders. The flat decoders read the common shape
// (series with labels and float samples, and 2.0 metadata) straight into
// the Request's flat, reused arrays, instead of gogo's generated types,
// which allocate every string, every series' slices and every sample slice
// anew for each request: the CPU profile of the ingest path under
// strata-bench showed gogo's Unmarshal and the garbage it leaves as the
// largest cost after the head's own appends. A series with histograms or
// exemplars is decoded by gogo (rare in practice and complicated to get
// right), and a body with anything malformed or unsupported makes the flat
// decoder give up, so that the whole body is decoded by gogo, which
// answers with its exact error. The flat decoders are therefore never more
// permissive than gogo; the fuzz tests check that both decode the same
// requests.
//
// Strings point into the body (unsafe.String): the receiver reuses the body
// once the request is answered, so what outlives the request is copied by
// the write path.
package rwproto

import (
	"unsafe"

	"github.com/strata-tsdb/strata/ingest"
)

// bytesString returns b as a string without copying.
func bytesString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Decoders returns the decoders of both protocols by protobuf message, for
// ingest.Options.Decoders; fast selects the flat decoders first.
func Decoders(fast bool) map[string]ingest.Decoder {
	return map[string]ingest.Decoder{
		ProtoV1: func(body []byte, req *ingest.Request) *ingest.Error { return DecodeV1(body, req, fast) },
		ProtoV2: func(body []byte, req *ingest.Request) *ingest.Error { return DecodeV2(body, req, fast) },
	}
}
