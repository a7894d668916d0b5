package frontend

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/bradfitz/gomemcache/memcache"
	"github.com/golang/snappy"
)

// memcachedCache keeps extents and generations in memcached, shared by
// every query process configured with the same servers. Values are
// snappy-compressed. Any failure is a miss (or, for bump, an error the
// caller acts on): a query never fails because memcached does.
//
// A generation that memcached lost (evicted, restarted) comes back as a new
// random value, never as a value it had: the entries stored under its old
// values are unreachable, as they must be, since the invalidations they
// missed are unknown.
type memcachedCache struct {
	c       *memcache.Client
	maxItem int
	m       *metrics
	logger  *slog.Logger
}

func newMemcachedCache(cfg MemcachedConfig, m *metrics, logger *slog.Logger) *memcachedCache {
	c := memcache.New(cfg.addresses()...)
	c.Timeout = time.Duration(cfg.Timeout)
	c.MaxIdleConns = 16
	return &memcachedCache{c: c, maxItem: cfg.MaxItemBytes, m: m, logger: logger}
}

func (c *memcachedCache) fetch(_ context.Context, keys []string) map[string][]byte {
	items, err := c.c.GetMulti(keys)
	if err != nil {
		c.failed("get", err)
	}
	out := make(map[string][]byte, len(items))
	for k, it := range items {
		v, err := snappy.Decode(nil, it.Value)
		if err != nil {
			c.failed("decode", err)
			continue
		}
		out[k] = v
	}
	return out
}

func (c *memcachedCache) store(_ context.Context, _ string, key string, value []byte) {
	v := snappy.Encode(nil, value)
	if len(v)+len(key)+64 > c.maxItem {
		c.m.tooLarge.Inc()
		return
	}
	if err := c.c.Set(&memcache.Item{Key: key, Value: v}); err != nil {
		c.failed("set", err)
		return
	}
	c.m.storedBytes.Add(float64(len(v)))
}

func (c *memcachedCache) generations(_ context.Context, keys []string) ([]uint64, error) {
	items, err := c.c.GetMulti(keys)
	if err != nil {
		c.failed("get", err)
		return nil, err
	}
	out := make([]uint64, len(keys))
	for i, k := range keys {
		if it, ok := items[k]; ok {
			if out[i], err = strconv.ParseUint(string(it.Value), 10, 64); err == nil {
				continue
			}
		}
		if out[i], err = c.create(k); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// create sets a missing generation to a random value, or reads the value
// another process set first.
func (c *memcachedCache) create(key string) (uint64, error) {
	g := randomGeneration()
	err := c.c.Add(&memcache.Item{Key: key, Value: []byte(strconv.FormatUint(g, 10))})
	if err == nil {
		return g, nil
	}
	if !errors.Is(err, memcache.ErrNotStored) {
		c.failed("add", err)
		return 0, err
	}
	it, err := c.c.Get(key)
	if err != nil {
		c.failed("get", err)
		return 0, err
	}
	return strconv.ParseUint(string(it.Value), 10, 64)
}

func (c *memcachedCache) bump(_ context.Context, keys []string) error {
	var errs []error
	for _, k := range keys {
		_, err := c.c.Increment(k, 1)
		if errors.Is(err, memcache.ErrCacheMiss) {
			// Nobody read it since memcached lost it: any new value will do.
			if _, err = c.create(k); err == nil {
				continue
			}
		}
		if err != nil {
			c.failed("incr", err)
			errs = append(errs, fmt.Errorf("memcached: bump %s: %w", k, err))
		}
	}
	return errors.Join(errs...)
}

func (c *memcachedCache) failed(op string, err error) {
	if errors.Is(err, memcache.ErrCacheMiss) {
		return
	}
	c.m.backendErrors.WithLabelValues(op).Inc()
	c.logger.Debug("memcached operation failed", "op", op, "err", err)
}

func (c *memcachedCache) close() error { return c.c.Close() }

// randomGeneration is a generation no earlier value repeats: 62 random bits
// (far from 2^64, so increments do not wrap).
func randomGeneration() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 2
}
