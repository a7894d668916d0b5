package load

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Protocol is a remote-write protocol version.
type Protocol string

// Remote-write protocols.
const (
	RW1 Protocol = "RW1.0"
	RW2 Protocol = "RW2.0"
)

func (p Protocol) headers(h http.Header) {
	h.Set("Content-Encoding", "snappy")
	h.Set("User-Agent", "strata-bench")
	if p == RW2 {
		h.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		h.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
		return
	}
	h.Set("Content-Type", "application/x-protobuf")
	h.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
}

// bodies returns the request bodies of p, by step.
func (d *Data) bodies(p Protocol) [][][]byte {
	if p == RW2 {
		return d.V2
	}
	return d.V1
}

// Send posts every body of protocol p to the server's remote-write
// endpoint with senders concurrent connections, one scrape step after the
// other (the requests of a step are sent concurrently; a step starts when
// the previous one is answered, so every series' samples arrive in order).
// Any answer but 204 fails the run: both systems must store everything.
func Send(ctx context.Context, url string, d *Data, p Protocol, senders int) (time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: senders, DisableCompression: true}}
	defer client.CloseIdleConnections()
	start := time.Now()
	for i, step := range d.bodies(p) {
		// The first step creates the series: sent by one connection, it
		// creates them in the same order in both systems, so both keep them
		// in the same order and aggregate floats in the same order.
		n := senders
		if i == 0 {
			n = 1
		}
		work := make(chan []byte)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for body := range work {
					if err := post(ctx, client, url, p, body); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	feed:
		for _, b := range step {
			select {
			case work <- b:
			case err := <-errs:
				errs <- err
				break feed
			case <-ctx.Done():
				break feed
			}
		}
		close(work)
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return 0, err
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func post(ctx context.Context, client *http.Client, url string, p Protocol, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/write", bytes.NewReader(body))
	if err != nil {
		return err
	}
	p.headers(req.Header)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("remote write: %w", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("remote write to %s: status %d: %s", url, resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}
