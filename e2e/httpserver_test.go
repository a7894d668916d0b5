package e2e

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/strata-tsdb/strata/internal/proctest"
)

// TestSlowClients runs Strata and Prometheus 3 with the same HTTP limits
// (read and idle timeouts, a connection limit) and checks that both treat
// slow and idle clients alike: a remote-write body trickling in a byte a
// second is answered 400 and its connection closed once the read timeout
// passes, a kept-alive connection is closed after the idle timeout, and a
// connection beyond the limit is served only once another closes.
func TestSlowClients(t *testing.T) {
	requireE2E(t)
	prom3 := prometheus3Bin(t)
	const readTimeout = 3 * time.Second
	strata := startStrata(t, "", t.TempDir(), "-http.read-timeout=3s", "-http.idle-timeout=3s")
	prom := startPrometheus(t, "prometheus3", prom3, proctest.FreeAddr(t), "global: {}\n",
		"--web.read-timeout=3s", "--web.enable-remote-write-receiver")
	for _, srv := range []struct{ name, addr string }{{"strata", strata.addr}, {"prometheus3", prom.addr}} {
		t.Run(srv.name+"/trickling body", func(t *testing.T) {
			c := dial(t, srv.addr)
			start := time.Now()
			if _, err := io.WriteString(c, "POST /api/v1/write HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nContent-Length: 1000\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			answer := make(chan string, 1)
			go func() {
				b, _ := io.ReadAll(c) // until the server closes the connection
				answer <- string(b)
			}()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case a := <-answer:
					took := time.Since(start)
					if !strings.HasPrefix(a, "HTTP/1.1 400") {
						t.Errorf("answer %q, want 400", a)
					}
					if took < readTimeout || took > readTimeout+10*time.Second {
						t.Errorf("connection closed after %s, want about the read timeout %s", took, readTimeout)
					}
					return
				case <-tick.C:
					if time.Since(start) > readTimeout+20*time.Second {
						t.Fatalf("the trickling connection is still open after %s", time.Since(start))
					}
					_, _ = c.Write([]byte{0}) // fails once the server closed; the reader reports
				}
			}
		})
		t.Run(srv.name+"/idle connection", func(t *testing.T) {
			c := dial(t, srv.addr)
			if _, err := io.WriteString(c, "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			idleFrom := time.Now()
			_ = c.SetReadDeadline(time.Now().Add(readTimeout + 20*time.Second))
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("idle connection: read %v after %s, want the server to close it", err, time.Since(idleFrom))
			}
			if took := time.Since(idleFrom); took < readTimeout-time.Second {
				t.Errorf("idle connection closed after %s, before the idle timeout %s", took, readTimeout)
			}
		})
	}

	// The connection limit, with timeouts long enough not to interfere.
	strataLimited := startStrata(t, "", t.TempDir(), "-http.max-connections=3")
	promLimited := startPrometheus(t, "prometheus3-limited", prom3, proctest.FreeAddr(t), "global: {}\n", "--web.max-connections=3")
	for _, srv := range []struct{ name, addr string }{{"strata", strataLimited.addr}, {"prometheus3", promLimited.addr}} {
		t.Run(srv.name+"/connection limit", func(t *testing.T) {
			var holders []net.Conn
			for range 3 {
				holders = append(holders, dial(t, srv.addr))
			}
			get := func(timeout time.Duration) error {
				hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := hc.Get("http://" + srv.addr + "/-/healthy")
				if err != nil {
					return err
				}
				resp.Body.Close()
				return nil
			}
			if err := get(2 * time.Second); err == nil {
				t.Fatalf("a fourth connection was served while three are open")
			}
			holders[0].Close()
			if err := get(30 * time.Second); err != nil {
				t.Fatalf("no connection served after one of three closed: %v", err)
			}
		})
	}
}

// dial opens a TCP connection to addr, closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
