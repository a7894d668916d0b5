package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// sendWriteV1 sends req to url (Strata's /api/v1/write) as a remote write 1.0
// request, snappy-compressed, as tenant (no X-Scope-OrgID when empty). It
// returns the status code and the response body; err is set only when no
// answer was received.
func sendWriteV1(ctx context.Context, hc *http.Client, url, tenant string, req *prompb.WriteRequest) (int, string, error) {
	raw, err := req.Marshal()
	if err != nil {
		return 0, "", fmt.Errorf("marshal write request: %w", err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return 0, "", err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	hr.Header.Set("User-Agent", "strata-e2e")
	if tenant != "" {
		hr.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, "", fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, string(body), nil
}

// newSeries returns a remote-write series; labels are given as name, value
// pairs and sorted by name, as the protocol requires.
func newSeries(samples []prompb.Sample, nameValues ...string) prompb.TimeSeries {
	ls := make([]prompb.Label, 0, len(nameValues)/2)
	for i := 0; i+1 < len(nameValues); i += 2 {
		ls = append(ls, prompb.Label{Name: nameValues[i], Value: nameValues[i+1]})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	return prompb.TimeSeries{Labels: ls, Samples: samples}
}

// seriesKey is a printable identity of a label set: {a="1", b="2"}, sorted.
func seriesKey(ls []prompb.Label) string {
	parts := make([]string, 0, len(ls))
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

// mapKey is seriesKey for a label map, as the query API returns it.
func mapKey(m map[string]string) string {
	ls := make([]prompb.Label, 0, len(m))
	for n, v := range m {
		ls = append(ls, prompb.Label{Name: n, Value: v})
	}
	return seriesKey(ls)
}

// Content types of remote-read answers.
const (
	contentTypeSamples = "application/x-protobuf"
	contentTypeChunked = "application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse"
)

// remoteRead sends one remote-read query to url (Strata's /api/v1/read)
// accepting only response type rt, decodes the answer (samples, or XOR
// chunks which it decodes into samples) and returns its series by seriesKey.
// It checks the answer's Content-Type against the response type.
func remoteRead(ctx context.Context, hc *http.Client, url, tenant string, q *prompb.Query, rt prompb.ReadRequest_ResponseType) (map[string][]prompb.Sample, error) {
	rr := &prompb.ReadRequest{Queries: []*prompb.Query{q}, AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{rt}}
	raw, err := rr.Marshal()
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("X-Prometheus-Remote-Read-Version", "0.1.0")
	if tenant != "" {
		hr.Header.Set("X-Scope-OrgID", tenant)
	}
	resp, err := hc.Do(hr)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("remote read: HTTP %s: %s", resp.Status, b)
	}
	ct := resp.Header.Get("Content-Type")
	out := map[string][]prompb.Sample{}
	switch rt {
	case prompb.ReadRequest_SAMPLES:
		if ct != contentTypeSamples {
			return nil, fmt.Errorf("SAMPLES answer has Content-Type %q, want %q", ct, contentTypeSamples)
		}
		if enc := resp.Header.Get("Content-Encoding"); enc != "snappy" {
			return nil, fmt.Errorf("SAMPLES answer has Content-Encoding %q, want snappy", enc)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		dec, err := snappy.Decode(nil, b)
		if err != nil {
			return nil, fmt.Errorf("decode snappy answer: %w", err)
		}
		var res prompb.ReadResponse
		if err := res.Unmarshal(dec); err != nil {
			return nil, fmt.Errorf("decode ReadResponse: %w", err)
		}
		if len(res.Results) != 1 {
			return nil, fmt.Errorf("ReadResponse has %d results for 1 query", len(res.Results))
		}
		for _, ts := range res.Results[0].Timeseries {
			k := seriesKey(ts.Labels)
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("series %s twice in the answer", k)
			}
			if len(ts.Histograms) > 0 {
				return nil, fmt.Errorf("series %s has histograms; the tests write none", k)
			}
			out[k] = append([]prompb.Sample{}, ts.Samples...)
		}
	case prompb.ReadRequest_STREAMED_XOR_CHUNKS:
		if ct != contentTypeChunked {
			return nil, fmt.Errorf("STREAMED_XOR_CHUNKS answer has Content-Type %q, want %q", ct, contentTypeChunked)
		}
		cr := remote.NewChunkedReader(resp.Body, 64<<20, nil)
		for {
			var msg prompb.ChunkedReadResponse
			err := cr.NextProto(&msg)
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("read frame: %w", err)
			}
			if msg.QueryIndex != 0 {
				return nil, fmt.Errorf("frame for query %d of 1", msg.QueryIndex)
			}
			for _, cs := range msg.ChunkedSeries {
				k := seriesKey(cs.Labels)
				for _, c := range cs.Chunks {
					samples, err := decodeXORChunk(c)
					if err != nil {
						return nil, fmt.Errorf("series %s: %w", k, err)
					}
					// A series with many chunks may span frames; chunks come in time order.
					out[k] = append(out[k], samples...)
				}
			}
		}
	default:
		return nil, fmt.Errorf("unknown response type %v", rt)
	}
	return out, nil
}

// decodeXORChunk decodes the samples of a remote-read XOR chunk, checking
// that they lie within the chunk's stated time range.
func decodeXORChunk(c prompb.Chunk) ([]prompb.Sample, error) {
	if c.Type != prompb.Chunk_XOR {
		return nil, fmt.Errorf("chunk encoding %v, want XOR (readable by every Prometheus)", c.Type)
	}
	ch, err := chunkenc.FromData(chunkenc.EncXOR, c.Data)
	if err != nil {
		return nil, fmt.Errorf("decode chunk: %w", err)
	}
	var out []prompb.Sample
	it := ch.Iterator(nil)
	for it.Next() == chunkenc.ValFloat {
		t, v := it.At()
		if t < c.MinTimeMs || t > c.MaxTimeMs {
			return nil, fmt.Errorf("sample at %d outside its chunk's range [%d, %d]", t, c.MinTimeMs, c.MaxTimeMs)
		}
		out = append(out, prompb.Sample{Timestamp: t, Value: v})
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("iterate chunk: %w", err)
	}
	return out, nil
}
